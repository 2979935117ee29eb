// Package cli implements the visionserve command line: one binary with
// subcommands. Main parses arguments and returns an exit code; it never
// calls os.Exit, so tests run commands in-process.
//
// Conventions: exit 0 on success, 1 when the work failed (one line on
// stderr saying why), 2 on a usage error.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"

	"github.com/visionserve/visionserve/internal/app"
	"github.com/visionserve/visionserve/internal/config"
	"github.com/visionserve/visionserve/internal/keys"
	"github.com/visionserve/visionserve/internal/modelcheck"
)

type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

func commands() map[string]command {
	return map[string]command{
		"serve":     {"run the inference server", runServe},
		"ocr":       {"recognise text in images, in-process (no server)", runOCR},
		"bench":     {"load-test a running server", runBench},
		"calibrate": {"fit a model's confidence calibration on labelled text lines", runCalibrate},
		"model":     {"create, sign, verify and inspect model packages", runModel},
		"auth":      {"make API keys and webhook secrets (hash-key, webhook-secret)", runAuth},
		"keys":      {"make key-encryption keys; show and rotate the keys of encrypted stores (new, status, rotate)", runKeys},
		"version":   {"print the version", runVersion},
	}
}

// Main runs the command named by args[0].
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmds := commands()
	if len(args) == 0 {
		usage(stderr, cmds)
		return 2
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout, cmds)
		return 0
	}
	c, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "visionserve: unknown command %q (run visionserve help)\n", args[0])
		return 2
	}
	return c.run(ctx, args[1:], stdout, stderr)
}

func usage(w io.Writer, cmds map[string]command) {
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintln(w, "usage: visionserve <command> [flags]\n\ncommands:")
	for _, n := range names {
		fmt.Fprintf(w, "  %-8s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w, "\nRun visionserve <command> -h for a command's flags.")
}

// newFlagSet returns a FlagSet that reports errors instead of exiting.
func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("visionserve "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: visionserve %s %s\n\nflags:\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses flags; it returns the exit code to use when parsing ended
// the command (help: 0, bad flags: 2) and ok=false.
func parse(fs *flag.FlagSet, args []string) (code int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, false
		}
		return 2, false
	}
	return 0, true
}

// fail prints one line and returns exit code 1.
func fail(stderr io.Writer, cmd string, err error) int {
	msg := strings.ReplaceAll(err.Error(), "\n", "; ")
	fmt.Fprintf(stderr, "visionserve %s: %s\n", cmd, msg)
	return 1
}

// serverFlags are the configuration flags shared by serve and ocr. Each
// overrides the config file only when given on the command line.
type serverFlags struct {
	configPath string
	addr       string
	grpcAddr   string
	workers    int
	queue      int
	logLevel   string
	logFormat  string
	// serve only
	adminAddr   string
	noAuth      bool
	jobsDir     string
	jobsStore   string
	jobsPGFile  string
	kekFile     string
	encAlg      string
	tlsCert     string
	tlsKey      string
	tlsClientCA string
	repo        repoFlags
}

func (f *serverFlags) register(fs *flag.FlagSet, d config.Config, serving bool) {
	fs.StringVar(&f.configPath, "config", "", "YAML configuration file (see docs/configuration.md)")
	fs.IntVar(&f.workers, "workers", d.Server.Workers, "requests recognised at once (0: one per CPU)")
	fs.StringVar(&f.logLevel, "log-level", d.Log.Level, "debug, info, warn or error")
	fs.StringVar(&f.logFormat, "log-format", d.Log.Format, "text or json")
	if serving {
		fs.StringVar(&f.addr, "addr", d.Server.Addr, "listen address; use :8080 to listen on every interface")
		fs.StringVar(&f.grpcAddr, "grpc-addr", d.Server.GRPCAddr, `gRPC listen address (OCR, faces, Open Inference Protocol); "" turns gRPC off`)
		fs.IntVar(&f.queue, "queue", d.Server.Queue, "requests that may wait for a worker before new ones get 429")
		fs.StringVar(&f.adminAddr, "admin-addr", d.Server.AdminAddr, "admin listener (model admin API, pprof, metrics); empty turns it off")
		fs.BoolVar(&f.noAuth, "no-auth", d.Auth.Disabled, "serve requests without credentials (local use on 127.0.0.1 only; admin routes still need credentials)")
		fs.StringVar(&f.jobsDir, "jobs-dir", d.Jobs.Dir, "directory of the job database; empty disables /v1/jobs")
		fs.StringVar(&f.jobsStore, "jobs-store", d.Jobs.Store, "job store: embedded (a database in --jobs-dir) or postgres (shared by replicas)")
		fs.StringVar(&f.jobsPGFile, "jobs-postgres-file", d.Jobs.PostgresFile, "file holding the job store's PostgreSQL connection string (--jobs-store postgres)")
		fs.StringVar(&f.kekFile, "kek-file", d.Encryption.KEKFile, "file holding the key-encryption key: seal galleries, jobs and reviews at rest (encryption.kek_file; docs/regulated.md)")
		fs.StringVar(&f.encAlg, "encryption-algorithm", string(d.Encryption.Algorithm), "algorithm of new data keys with --kek-file: aes-256-gcm (default) or sm4-gcm")
		fs.StringVar(&f.tlsCert, "tls-cert", d.TLS.CertFile, "PEM certificate chain: serve HTTPS (TLS 1.3), reloaded when the file changes")
		fs.StringVar(&f.tlsKey, "tls-key", d.TLS.KeyFile, "PEM private key of --tls-cert")
		fs.StringVar(&f.tlsClientCA, "tls-client-ca", d.TLS.ClientCAFile, "PEM CA certificates: require client certificates (mTLS)")
		f.repo.register(fs)
	}
}

// load builds the effective configuration: defaults, then the file, then
// the flags that were set explicitly.
func (f *serverFlags) load(fs *flag.FlagSet) (config.Config, error) {
	cfg := config.Default()
	if f.configPath != "" {
		var err error
		if cfg, err = config.Load(f.configPath); err != nil {
			return cfg, err
		}
	}
	fs.Visit(func(fl *flag.Flag) {
		switch fl.Name {
		case "addr":
			cfg.Server.Addr = f.addr
		case "grpc-addr":
			cfg.Server.GRPCAddr = f.grpcAddr
		case "workers":
			cfg.Server.Workers = f.workers
		case "queue":
			cfg.Server.Queue = f.queue
		case "log-level":
			cfg.Log.Level = f.logLevel
		case "log-format":
			cfg.Log.Format = f.logFormat
		case "admin-addr":
			cfg.Server.AdminAddr = f.adminAddr
		case "no-auth":
			cfg.Auth.Disabled = f.noAuth
		case "jobs-dir":
			cfg.Jobs.Dir = f.jobsDir
		case "jobs-store":
			cfg.Jobs.Store = f.jobsStore
		case "jobs-postgres-file":
			cfg.Jobs.PostgresFile = f.jobsPGFile
		case "kek-file":
			cfg.Encryption.KEKFile = f.kekFile
		case "encryption-algorithm":
			cfg.Encryption.Algorithm = keys.Algorithm(f.encAlg)
		case "tls-cert":
			cfg.TLS.CertFile = f.tlsCert
		case "tls-key":
			cfg.TLS.KeyFile = f.tlsKey
		case "tls-client-ca":
			cfg.TLS.ClientCAFile = f.tlsClientCA
		}
	})
	f.repo.apply(fs, &cfg)
	return cfg, cfg.Validate()
}

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("serve", "[flags]", stderr)
	var f serverFlags
	f.register(fs, config.Default(), true)
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "visionserve serve: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	cfg, err := f.load(fs)
	if err != nil {
		return fail(stderr, "serve", err)
	}
	log := newLogger(cfg.Log, stderr)
	log.Info("effective configuration", "config", fmt.Sprintf("%+v", cfg))
	opts := app.Options{Config: cfg, Logger: log}
	if cfg.Repository.Dir != "" && !cfg.Repository.Check.Disabled {
		// Each new version is loaded first in `visionserve model check
		// --child`, a process of this very binary.
		check, err := modelcheck.Executable()
		if err != nil {
			return fail(stderr, "serve", err)
		}
		opts.ModelCheck = &check
	}
	if err := app.Run(ctx, opts); err != nil {
		return fail(stderr, "serve", err)
	}
	return 0
}

func runVersion(_ context.Context, _ []string, stdout, _ io.Writer) int {
	fmt.Fprintf(stdout, "visionserve %s\n", app.Version)
	return 0
}

// stdinName is the IMAGE argument that means standard input.
const stdinName = "-"

// readInput reads a file (or stdin) of at most limit bytes; one byte more
// is read so the decoder reports the limit rather than a truncated image.
func readInput(name string, limit int64) ([]byte, error) {
	var r io.Reader = os.Stdin
	if name != stdinName {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	return io.ReadAll(io.LimitReader(r, limit+1))
}
