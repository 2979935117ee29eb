package cli

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/visionserve/visionserve/internal/modelrepo/importer"
	"github.com/visionserve/visionserve/internal/modelrepo/manifest"
	"github.com/visionserve/visionserve/internal/modelrepo/signing"
)

const modelUsage = `usage: visionserve model <command> [flags] [DIR]

Model packages: a directory <repo>/<model-name>/<version>/ holding the model
files, manifest.json and model.sig.

commands:
  keygen   --out DIR [--alg ecdsa-p256|ecdsa-p384|sm2]
                                                      write a private and a public signing key
  pack     --name N --version V --kind K [--runtime JSON] DIR
                                                      write DIR/manifest.json
  sign     --key PRIVATE [--cert CERT [--chain CHAIN]] DIR
                                                      write DIR/model.sig
  verify   (--key PUBLIC)... (--ca CA.pem)... [--signature BUNDLE] [--ignore-paths P]... [--ignore-unsigned-files] DIR
                                                      check DIR's files and signature (a package, or a model
                                                      signed with OpenSSF model signing and no manifest)
  import   --repo DIR --sign-key PRIVATE (--key PUBLIC)... (--ca CA.pem)... [--name N] [--version V] [--kind K] SOURCE
                                                      verify a vendor's zip (model, config.json, checksum.sha256,
                                                      RSA-PSS signature.sig) or OpenSSF-signed model, then publish
                                                      it as a package signed with the repository's key
  inspect  DIR                                        show the manifest and the signature
  check    (--key PUBLIC)... (--ca CA.pem)... [--timeout D] [--memory-limit SIZE] DIR
                                                      verify DIR, then load and warm it up in a separate
                                                      process, as the server does before it loads a version
  bootstrap [--home DIR] [--tessdata DIR] [--ppocr DIR] [--face DIR|none]
                                                      package and sign the default models (Tesseract
                                                      eng and chi_sim, PP-OCRv4 Chinese, YuNet and
                                                      MobileFaceNet) with a local key (HOME/keys)
                                                      into HOME/models

Run 'visionserve model <command> -h' for a command's flags.
Exit status: 0 on success, 1 when a command fails, 2 on a usage error.
`

// runModel implements "visionserve model ...". args excludes "model". It
// returns the process exit status: 0 on success, 1 on failure with one
// line on stderr naming the reason, 2 on a usage error.
func runModel(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "visionserve model: missing command (keygen, pack, sign, verify, import, inspect, check or bootstrap); see -h")
		return 2
	}
	c := &modelCmd{verb: args[0], stdout: stdout, stderr: stderr}
	switch args[0] {
	case "keygen":
		return c.keygen(args[1:])
	case "pack":
		return c.pack(ctx, args[1:])
	case "sign":
		return c.sign(ctx, args[1:])
	case "verify":
		return c.verify(ctx, args[1:])
	case "import":
		return c.importCmd(ctx, args[1:])
	case "inspect":
		return c.inspect(args[1:])
	case "check":
		return c.check(ctx, args[1:])
	case "bootstrap":
		return c.bootstrap(ctx, args[1:])
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, modelUsage)
		return 0
	}
	fmt.Fprintf(stderr, "visionserve model: unknown command %q (want keygen, pack, sign, verify, import, inspect, check or bootstrap)\n", modelOneLine(args[0]))
	return 2
}

// modelCmd carries one invocation's verb and writers.
type modelCmd struct {
	verb           string
	stdout, stderr io.Writer
	synopsis       string
}

// fail reports err on one line and returns exit status 1. Verification
// errors already start with their reason ("digest_mismatch: ...").
func (c *modelCmd) fail(err error) int {
	fmt.Fprintf(c.stderr, "visionserve model %s: %s\n", c.verb, modelOneLine(err.Error()))
	return 1
}

// usageError reports a usage problem on one line and returns exit status 2.
func (c *modelCmd) usageError(format string, args ...any) int {
	fmt.Fprintf(c.stderr, "visionserve model %s: %s (see 'visionserve model %s -h')\n", c.verb, modelOneLine(fmt.Sprintf(format, args...)), c.verb)
	return 2
}

// flags returns a silent FlagSet for the verb; parse prints the usage
// (synopsis and flag defaults) to stdout for -h, and one line to stderr
// for a bad flag.
func (c *modelCmd) flags(synopsis string) *flag.FlagSet {
	c.synopsis = synopsis
	set := flag.NewFlagSet("visionserve model "+c.verb, flag.ContinueOnError)
	set.SetOutput(io.Discard)
	set.Usage = func() {}
	return set
}

func (c *modelCmd) printUsage(set *flag.FlagSet) {
	fmt.Fprintf(c.stdout, "usage: visionserve model %s %s\n", c.verb, c.synopsis)
	n := 0
	set.VisitAll(func(*flag.Flag) { n++ })
	if n > 0 {
		fmt.Fprintln(c.stdout, "\nflags:")
		set.SetOutput(c.stdout)
		set.PrintDefaults()
		set.SetOutput(io.Discard)
	}
}

// parse parses args, allowing flags after positional arguments
// ("verify DIR --key k.pem"). It returns the positional arguments, or an
// exit status when the command must stop (0 after -h, 2 on a bad flag).
func (c *modelCmd) parse(set *flag.FlagSet, args []string, positional int) ([]string, int, bool) {
	var rest []string
	for {
		if err := set.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				c.printUsage(set)
				return nil, 0, false
			}
			return nil, c.usageError("%v", err), false
		}
		if set.NArg() == 0 {
			break
		}
		rest = append(rest, set.Arg(0))
		args = set.Args()[1:]
	}
	if len(rest) != positional {
		if positional == 1 {
			return nil, c.usageError("want exactly one DIR argument, got %d", len(rest)), false
		}
		return nil, c.usageError("unexpected arguments: %s", strings.Join(rest, " ")), false
	}
	return rest, 0, true
}

// modelListFlag is a repeatable string flag.
type modelListFlag []string

func (l *modelListFlag) String() string { return strings.Join(*l, ",") }

func (l *modelListFlag) Set(v string) error {
	if v == "" {
		return errors.New("empty value")
	}
	*l = append(*l, v)
	return nil
}

// keygenAlgs are keygen's --alg values.
var keygenAlgs = map[string]signing.Algorithm{
	"ecdsa-p256": signing.ECDSAP256SHA256,
	"ecdsa-p384": signing.ECDSAP384SHA384,
	"sm2":        signing.SM2SM3,
}

func (c *modelCmd) keygen(args []string) int {
	flags := c.flags("--out DIR [--alg ecdsa-p256|ecdsa-p384|sm2]")
	out := flags.String("out", "", "directory for the key files (created with mode 0700 if absent)")
	algName := flags.String("alg", "ecdsa-p256", "key algorithm: ecdsa-p256, ecdsa-p384, or sm2 (GM/T SM2, signs SM3 digests)")
	if _, code, ok := c.parse(flags, args, 0); !ok {
		return code
	}
	if *out == "" {
		return c.usageError("--out is required")
	}
	alg, ok := keygenAlgs[*algName]
	if !ok {
		return c.usageError("unknown --alg %q (want ecdsa-p256, ecdsa-p384 or sm2)", *algName)
	}
	privPath, pubPath, err := signing.GenerateKey(*out, alg)
	if err != nil {
		return c.fail(err)
	}
	pub, err := signing.LoadPublicKey(pubPath)
	if err != nil {
		return c.fail(err)
	}
	id, err := signing.KeyID(pub)
	if err != nil {
		return c.fail(err)
	}
	fmt.Fprintf(c.stdout, "private key: %s (mode 0600; keep it secret)\npublic key:  %s\nalgorithm:   %s\nkey id:      %s\n", privPath, pubPath, alg, id)
	return 0
}

func (c *modelCmd) pack(ctx context.Context, args []string) int {
	flags := c.flags("--name N --version V --kind K [--runtime JSON] DIR")
	name := flags.String("name", "", "model name: 1-64 of a-z 0-9 . _ -")
	version := flags.Int("version", 0, "version, a positive integer (the directory name)")
	kind := flags.String("kind", "", "one of ocr-tesseract, ocr-ppocr, face-detect, face-embed, onnx")
	runtime := flags.String("runtime", "", "engine options as a JSON object, e.g. '{\"lang\":\"eng\"}'")
	rest, code, ok := c.parse(flags, args, 1)
	if !ok {
		return code
	}
	switch {
	case *name == "":
		return c.usageError("--name is required")
	case !manifest.ValidName(*name):
		return c.usageError("invalid --name %q: want 1-64 of a-z 0-9 . _ -, starting with a letter or digit", *name)
	case *version < 1:
		return c.usageError("--version must be a positive integer")
	case *kind == "":
		return c.usageError("--kind is required")
	}
	k, err := manifest.ParseKind(*kind)
	if err != nil {
		return c.usageError("%v", err)
	}
	var rt json.RawMessage
	if *runtime != "" {
		var obj map[string]any
		if err := json.Unmarshal([]byte(*runtime), &obj); err != nil || obj == nil {
			return c.usageError("--runtime must be a JSON object")
		}
		rt = json.RawMessage(*runtime)
	}
	m, err := manifest.Pack(ctx, rest[0], *name, *version, k, rt)
	if err != nil {
		return c.fail(err)
	}
	fmt.Fprintf(c.stdout, "packed %s version %d (%s): %s, %s\n", m.Name, m.Version, m.Kind, modelFileCount(len(m.Files)), filepath.Join(rest[0], manifest.FileName))
	if _, err := os.Stat(filepath.Join(rest[0], manifest.SignatureFileName)); err == nil {
		fmt.Fprintf(c.stdout, "note: %s no longer matches; run 'visionserve model sign'\n", filepath.Join(rest[0], manifest.SignatureFileName))
	}
	return 0
}

func (c *modelCmd) sign(ctx context.Context, args []string) int {
	flags := c.flags("--key PRIVATE [--cert CERT [--chain CHAIN]] DIR")
	key := flags.String("key", "", "PEM private key (ECDSA P-256, P-384, P-521, or SM2)")
	cert := flags.String("cert", "", "PEM signing certificate for --key (certificate method)")
	chain := flags.String("chain", "", "PEM intermediate CA certificates for --cert")
	rest, code, ok := c.parse(flags, args, 1)
	if !ok {
		return code
	}
	if *key == "" {
		return c.usageError("--key is required")
	}
	if *chain != "" && *cert == "" {
		return c.usageError("--chain needs --cert")
	}
	s, err := signing.LoadSigner(*key, *cert, *chain)
	if err != nil {
		return c.fail(err)
	}
	m, err := s.SignPackage(ctx, rest[0])
	if err != nil {
		return c.fail(err)
	}
	by := "key " + s.KeyID()
	if leaf := s.Certificate(); leaf != nil {
		by = "certificate " + leaf.Subject.String() + ", valid until " + leaf.NotAfter.UTC().Format(time.RFC3339)
	}
	fmt.Fprintf(c.stdout, "signed %s version %d (%s) with %s: %s\n", m.Name, m.Version, m.Kind, by, filepath.Join(rest[0], manifest.SignatureFileName))
	return 0
}

func (c *modelCmd) verify(ctx context.Context, args []string) int {
	flags := c.flags("(--key PUBLIC)... (--ca CA.pem)... [--signature BUNDLE] [--ignore-paths P]... [--ignore-unsigned-files] DIR|FILE")
	var keys, cas modelListFlag
	flags.Var(&keys, "key", "trusted PEM public key (repeatable)")
	flags.Var(&cas, "ca", "trusted PEM CA certificate(s) (repeatable)")
	src := openSSFFlags(flags)
	rest, code, ok := c.parse(flags, args, 1)
	if !ok {
		return code
	}
	if len(keys) == 0 && len(cas) == 0 {
		return c.usageError("give at least one --key or --ca to trust")
	}
	trust, err := importer.LoadTrust(keys, cas)
	if err != nil {
		return c.fail(err)
	}
	if trust.OpenSSF == nil {
		return c.fail(errors.New("no ECDSA or SM2 public key and no CA certificate given (RSA keys verify zip imports only)"))
	}
	src.Path = rest[0]
	// A directory with a manifest is a visionserve package; anything else
	// is a model signed with OpenSSF model signing alone.
	if _, err := os.Stat(filepath.Join(src.Path, manifest.FileName)); err != nil {
		res, _, err := importer.VerifyOpenSSF(ctx, trust.OpenSSF, *src)
		if err != nil {
			return c.fail(err)
		}
		fmt.Fprintf(c.stdout, "verified model %s (OpenSSF model signing, no visionserve manifest): %s, signed by %s\n", modelOneLine(src.Path), modelFileCount(len(res.Digests)), signedBy(res))
		return 0
	}
	got, err := trust.OpenSSF.VerifyPackage(ctx, src.Path)
	if err != nil {
		return c.fail(err)
	}
	m := got.Manifest
	fmt.Fprintf(c.stdout, "verified %s version %d (%s): %s, signed by %s\n", m.Name, m.Version, m.Kind, modelFileCount(len(m.Files)), signedBy(got.Signature))
	return 0
}

// openSSFFlags registers the options of a model signed with OpenSSF model
// signing (model_signing's --signature, --ignore-paths and
// --ignore-unsigned-files) and returns the Source they fill.
func openSSFFlags(flags *flag.FlagSet) *importer.Source {
	src := &importer.Source{}
	flags.StringVar(&src.Signature, "signature", "", "OpenSSF signature bundle of a model without a visionserve manifest (default DIR/model.sig)")
	flags.Func("ignore-paths", "model-relative path the signature check skips (repeatable)", func(v string) error {
		src.IgnorePaths = append(src.IgnorePaths, v)
		return nil
	})
	flags.BoolVar(&src.IgnoreUnsignedFiles, "ignore-unsigned-files", false, "accept files the signature does not list (import leaves them out)")
	return src
}

// importCmd implements "model import".
func (c *modelCmd) importCmd(ctx context.Context, args []string) int {
	flags := c.flags("--repo DIR --sign-key PRIVATE [--sign-cert CERT [--sign-chain CHAIN]] (--key PUBLIC)... (--ca CA.pem)... [--name N] [--version V] [--kind K] [--runtime JSON] [--signature BUNDLE] [--ignore-paths P]... [--ignore-unsigned-files] PKG.zip|DIR|FILE")
	repo := flags.String("repo", "", "model repository to publish into (<repo>/<name>/<version>)")
	signKey := flags.String("sign-key", "", "the repository's PEM private key, which signs the package")
	signCert := flags.String("sign-cert", "", "PEM certificate of --sign-key (certificate method)")
	signChain := flags.String("sign-chain", "", "PEM intermediate CA certificates for --sign-cert")
	var keys, cas modelListFlag
	flags.Var(&keys, "key", "trusted PEM public key of the source's signer: RSA for zips, ECDSA or SM2 for OpenSSF-signed models (repeatable)")
	flags.Var(&cas, "ca", "trusted PEM CA certificate(s) for OpenSSF-signed models (repeatable)")
	name := flags.String("name", "", "model name (default: config.json's, else from the file name)")
	version := flags.Int("version", 0, "version (default: config.json's, else the next free one)")
	kind := flags.String("kind", "", "package kind (default: config.json's, else from the model file)")
	runtime := flags.String("runtime", "", "engine options as a JSON object (default: config.json's runtime)")
	src := openSSFFlags(flags)
	rest, code, ok := c.parse(flags, args, 1)
	if !ok {
		return code
	}
	switch {
	case *repo == "":
		return c.usageError("--repo is required")
	case *signKey == "":
		return c.usageError("--sign-key is required: imported packages are signed with the repository's key")
	case len(keys) == 0 && len(cas) == 0:
		return c.usageError("give at least one --key or --ca to trust the source's signer")
	case *signChain != "" && *signCert == "":
		return c.usageError("--sign-chain needs --sign-cert")
	case *name != "" && !manifest.ValidName(*name):
		return c.usageError("invalid --name %q: want 1-64 of a-z 0-9 . _ -, starting with a letter or digit", *name)
	case *version < 0:
		return c.usageError("--version must be a positive integer")
	}
	src.Path, src.Name, src.Version = rest[0], *name, *version
	if *kind != "" {
		k, err := manifest.ParseKind(*kind)
		if err != nil {
			return c.usageError("%v", err)
		}
		src.Kind = k
	}
	if *runtime != "" {
		var obj map[string]any
		if err := json.Unmarshal([]byte(*runtime), &obj); err != nil || obj == nil {
			return c.usageError("--runtime must be a JSON object")
		}
		src.Runtime = json.RawMessage(*runtime)
	}
	signer, err := signing.LoadSigner(*signKey, *signCert, *signChain)
	if err != nil {
		return c.fail(fmt.Errorf("signing key: %w", err))
	}
	trust, err := importer.LoadTrust(keys, cas)
	if err != nil {
		return c.fail(err)
	}
	im, err := importer.New(importer.Options{Repo: *repo, Signer: signer, Trust: trust})
	if err != nil {
		return c.fail(err)
	}
	res, err := im.Import(ctx, *src)
	if err != nil {
		return c.fail(err)
	}
	m := res.Manifest
	from := m.Provenance.Signer.Method + " " + m.Provenance.Signer.KeyID
	if m.Provenance.Signer.Subject != "" {
		from = "certificate " + m.Provenance.Signer.Subject
	}
	fmt.Fprintf(c.stdout, "imported %s version %d (%s) from %s (%s, %s by %s): %s, signed with key %s\n",
		m.Name, m.Version, m.Kind, modelOneLine(m.Provenance.Source), m.Provenance.Format, m.Provenance.Signer.Algorithm, modelOneLine(from), res.Dir, signer.KeyID())
	return 0
}

// signedBy describes a verified signature's signer for the CLI's output.
func signedBy(sig *signing.Result) string {
	if sig.Method == signing.MethodCertificate {
		leaf := sig.Chain[0]
		return fmt.Sprintf("certificate %s issued by %s, valid until %s (%s)", leaf.Subject, sig.Chain[len(sig.Chain)-1].Subject, sig.NotAfter().UTC().Format(time.RFC3339), sig.Algorithm)
	}
	return fmt.Sprintf("key %s (%s)", sig.KeyID, sig.Algorithm)
}

func (c *modelCmd) inspect(args []string) int {
	flags := c.flags("DIR")
	rest, code, ok := c.parse(flags, args, 1)
	if !ok {
		return code
	}
	dir := rest[0]
	m, err := manifest.Load(dir)
	if err != nil {
		return c.fail(err)
	}
	w := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "name:\t%s\n", m.Name)
	fmt.Fprintf(w, "version:\t%d\n", m.Version)
	fmt.Fprintf(w, "kind:\t%s\n", m.Kind)
	fmt.Fprintf(w, "created:\t%s\n", m.Created.UTC().Format(time.RFC3339))
	if m.Runtime != nil {
		fmt.Fprintf(w, "runtime:\t%s\n", modelCompactJSON(m.Runtime))
	}
	fmt.Fprintf(w, "files:\t%d\n", len(m.Files))
	w.Flush()
	for _, f := range m.Files {
		fmt.Fprintf(c.stdout, "  %s  %12d  %s\n", f.SHA256, f.Size, modelOneLine(f.Path))
	}

	data, err := os.ReadFile(filepath.Join(dir, manifest.SignatureFileName))
	if errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintln(c.stdout, "signature: none (unsigned package)")
		return 0
	}
	if err != nil {
		return c.fail(err)
	}
	info, err := signing.Inspect(data)
	if err != nil {
		return c.fail(err)
	}
	w = tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "signature:\t%s (not verified here; use 'visionserve model verify')\n", info.Method)
	switch info.Method {
	case signing.MethodKey:
		id := info.KeyID
		if id == "" {
			id = "(not named in the bundle)"
		}
		fmt.Fprintf(w, "  key id:\t%s\n", id)
	case signing.MethodCertificate:
		leaf := info.Certificates[0]
		fmt.Fprintf(w, "  subject:\t%s\n", modelOneLine(leaf.Subject.String()))
		fmt.Fprintf(w, "  issuer:\t%s\n", modelOneLine(leaf.Issuer.String()))
		fmt.Fprintf(w, "  valid:\t%s to %s\n", leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339))
		fmt.Fprintf(w, "  usage:\t%s\n", modelCertUsage(leaf))
		fmt.Fprintf(w, "  chain:\t%d certificate(s) in the bundle\n", len(info.Certificates))
	}
	if st := info.Statement; st != nil {
		note := ""
		for _, r := range st.Resources {
			if r.Name == manifest.FileName {
				note = ", manifest.json included"
			}
		}
		fmt.Fprintf(w, "  signed files:\t%d%s (%s, %s)\n", len(st.Resources), note, st.Method, st.HashType)
	}
	w.Flush()
	return 0
}

func modelFileCount(n int) string {
	if n == 1 {
		return "1 file"
	}
	return fmt.Sprintf("%d files", n)
}

// modelCertUsage describes a certificate's key usages for inspect.
func modelCertUsage(c *x509.Certificate) string {
	var parts []string
	if c.KeyUsage&x509.KeyUsageDigitalSignature != 0 {
		parts = append(parts, "digitalSignature")
	}
	for _, u := range c.ExtKeyUsage {
		if u == x509.ExtKeyUsageCodeSigning {
			parts = append(parts, "codeSigning")
		}
	}
	if len(parts) == 0 {
		return "(no digitalSignature or codeSigning)"
	}
	return strings.Join(parts, ", ")
}

func modelCompactJSON(raw json.RawMessage) string {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return modelOneLine(string(raw))
	}
	return modelOneLine(b.String())
}

// modelOneLine replaces control characters so that a message is one line.
func modelOneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '?'
		}
		return r
	}, s)
}
