package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/visionserve/visionserve/internal/app"
	"github.com/visionserve/visionserve/internal/config"
	"github.com/visionserve/visionserve/internal/keys"
	"github.com/visionserve/visionserve/internal/keys/keybolt"
)

const keysUsage = "usage: visionserve keys new [--alg aes-256-gcm|sm4-gcm] | status --config FILE | rotate --config FILE [--data-key] [--new-kek-file FILE | --new-kek-env VAR] [--reencrypt]"

// runKeys makes key-encryption keys and inspects and rotates the keys of
// the stores a configuration names (see docs/regulated.md).
func runKeys(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, keysUsage)
		return 2
	}
	switch args[0] {
	case "new":
		return runKeysNew(args[1:], stdout, stderr)
	case "status":
		return runKeysStores(ctx, "status", "--config FILE", args[1:], stdout, stderr)
	case "rotate":
		return runKeysStores(ctx, "rotate", "--config FILE [--data-key] [--new-kek-file FILE | --new-kek-env VAR] [--reencrypt]", args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprintln(stdout, keysUsage)
		return 0
	}
	fmt.Fprintf(stderr, "visionserve keys: unknown subcommand %q\n%s\n", args[0], keysUsage)
	return 2
}

// runKeysNew prints a new random KEK: keep it in a secret (a file of mode
// 0600, a Kubernetes Secret) and name it in encryption.kek_file or
// encryption.kek_env.
func runKeysNew(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("keys new", "[--alg aes-256-gcm|sm4-gcm]", stderr)
	alg := fs.String("alg", string(keys.AES256GCM), "the KEK's algorithm: aes-256-gcm (32 bytes) or sm4-gcm (16 bytes)")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "visionserve keys new: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	text, err := keys.NewKEK(keys.Algorithm(*alg))
	if err != nil {
		return fail(stderr, "keys new", err)
	}
	fmt.Fprintln(stdout, text)
	return 0
}

// keysFlags are status's and rotate's flags.
type keysFlags struct {
	config     string
	dataKey    bool
	newKEKFile string
	newKEKEnv  string
	reencrypt  bool
}

func (f *keysFlags) register(fs *flag.FlagSet, rotate bool) {
	fs.StringVar(&f.config, "config", "", "the server's YAML configuration: its encryption section and the stores it names (required)")
	if rotate {
		fs.BoolVar(&f.dataKey, "data-key", false, "make a new data key of encryption.algorithm in each store: new records are sealed with it, older ones stay readable")
		fs.StringVar(&f.newKEKFile, "new-kek-file", "", "re-wrap each store's data keys under the KEK in this file (then point encryption at it)")
		fs.StringVar(&f.newKEKEnv, "new-kek-env", "", "re-wrap each store's data keys under the KEK in this environment variable")
		fs.BoolVar(&f.reencrypt, "reencrypt", false, "seal every record under the active data key, records stored in clear before encryption was on included")
	}
}

// runKeysStores runs status or rotate on every store the configuration
// names that keeps records at rest. Embedded stores must not be open in a
// server (their file is locked); PostgreSQL stores may be, and their
// servers pick the changed keyring up.
func runKeysStores(ctx context.Context, cmd, synopsis string, args []string, stdout, stderr io.Writer) int {
	name := "keys " + cmd
	fs := newFlagSet(name, synopsis, stderr)
	var f keysFlags
	f.register(fs, cmd == "rotate")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 || f.config == "" {
		fmt.Fprintf(stderr, "visionserve %s: give --config FILE and no arguments\n", name)
		return 2
	}
	var next *keys.KEK
	if cmd == "rotate" {
		if !f.dataKey && !f.reencrypt && f.newKEKFile == "" && f.newKEKEnv == "" {
			fmt.Fprintf(stderr, "visionserve %s: nothing to do: give --data-key, --new-kek-file, --new-kek-env or --reencrypt\n", name)
			return 2
		}
		if f.newKEKFile != "" || f.newKEKEnv != "" {
			nc, err := keys.Settings{KEKFile: f.newKEKFile, KEKEnv: f.newKEKEnv}.Load()
			if err != nil {
				return fail(stderr, name, fmt.Errorf("the new key-encryption key: %w", err))
			}
			next = nc.KEK
		}
	}
	cfg, err := config.Load(f.config)
	if err != nil {
		return fail(stderr, name, err)
	}
	enc, err := cfg.Encryption.Load()
	if err != nil {
		return fail(stderr, name, err)
	}
	if cmd == "rotate" && !enc.Enabled() {
		return fail(stderr, name, errors.New("encryption is off in the configuration: set encryption.kek_file or encryption.kek_env to the KEK the stores are sealed with"))
	}
	stores, err := app.OpenKeyedStores(cfg, enc)
	if err != nil {
		return fail(stderr, name, err)
	}
	closeAll := func() error {
		var errs []error
		for _, s := range stores {
			errs = append(errs, s.Close())
		}
		stores = nil
		return errors.Join(errs...)
	}
	defer closeAll()
	var compact []string
	for _, s := range stores {
		if s.Ring == nil {
			continue
		}
		if err := keysStep(ctx, f, enc, next, s, stdout); err != nil {
			return fail(stderr, name, fmt.Errorf("%s: %w", s.Name, err))
		}
		if s.File != "" && (f.reencrypt || next != nil) {
			compact = append(compact, s.File)
		}
	}
	if err := closeAll(); err != nil {
		return fail(stderr, name, err)
	}
	// bbolt keeps what it overwrote (records in clear, the keyring wrapped
	// by the old KEK) in free pages: rewrite the files with live data only.
	for _, file := range compact {
		if err := keybolt.Compact(file, time.Second); err != nil {
			return fail(stderr, name, err)
		}
		fmt.Fprintf(stdout, "%s compacted: the values overwritten are gone from it\n", file)
	}
	if next != nil {
		fmt.Fprintf(stdout, "the stores now open only with key-encryption key %s (%s): point encryption.kek_file or kek_env at it before the next start\n", next.ID(), next.Source())
	}
	return 0
}

// keysStep rotates what f asks for in one store, then prints its status
// and census.
func keysStep(ctx context.Context, f keysFlags, enc keys.Config, next *keys.KEK, s app.KeyedStore, stdout io.Writer) error {
	if f.dataKey {
		id, err := s.Ring.AddKey(ctx, enc.Algorithm)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: new data key %d (%s) is active\n", s.Name, id, enc.Algorithm)
	}
	if next != nil {
		if err := s.Ring.Rewrap(ctx, next); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: data keys re-wrapped under key-encryption key %s\n", s.Name, next.ID())
	}
	var c keys.Census
	var err error
	if f.reencrypt {
		c, err = s.Ring.Reencrypt(ctx, false)
	} else {
		c, err = s.Ring.Census(ctx)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: %s\n", s.Name, s.Ring)
	var counts []string
	if c.Clear > 0 || !s.Ring.Enabled() {
		counts = append(counts, fmt.Sprintf("%d in clear", c.Clear))
	}
	for _, id := range slices.Sorted(maps.Keys(c.ByKey)) {
		counts = append(counts, fmt.Sprintf("%d under data key %d", c.ByKey[id], id))
	}
	if len(counts) == 0 {
		counts = append(counts, "none")
	}
	resealed := ""
	if f.reencrypt {
		resealed = fmt.Sprintf(" (%d sealed anew)", c.Resealed)
	}
	fmt.Fprintf(stdout, "%s: records: %s%s\n", s.Name, strings.Join(counts, ", "), resealed)
	return nil
}
