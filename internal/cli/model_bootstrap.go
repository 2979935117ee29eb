package cli

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"

	"github.com/visionserve/visionserve/internal/config"
	"github.com/visionserve/visionserve/internal/engine/tesseract"
	"github.com/visionserve/visionserve/internal/modelrepo"
	"github.com/visionserve/visionserve/internal/modelrepo/manifest"
	"github.com/visionserve/visionserve/internal/modelrepo/signing"
	"github.com/visionserve/visionserve/internal/ocr/ppocr"
	"github.com/visionserve/visionserve/models"
)

// defaultHome is where bootstrap keeps the local key and repository:
// $XDG_DATA_HOME/visionserve, or ~/.local/share/visionserve. Never inside
// a source tree.
func defaultHome() string {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "visionserve")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "share", "visionserve")
	}
	return filepath.Join(os.TempDir(), "visionserve")
}

// bootstrap makes the default models signed packages, so that the first
// run serves packages like any other: it creates a local signing key once
// (HOME/keys) and publishes HOME/models/<name>/<N>, signed with it, for
//
//   - ocr-eng: the system's Tesseract <lang>.traineddata (+ osd);
//   - ocr-chi-sim: the system's Tesseract Simplified Chinese (+ osd), when
//     tesseract-ocr-chi-sim is installed;
//   - ocr-zh: the PP-OCRv4 Chinese+English models (kind ocr-ppocr) that
//     hack/setup-models.sh installs, when they are there;
//   - face-detect and face-embed: YuNet and MobileFaceNet, built into the
//     binary from the repository's models/ (or --face DIR's files).
//
// When the newest published version already holds the same files and
// verifies with the key, it does nothing; when the files changed (a
// package upgrade), it publishes version N+1, which a running server swaps
// in. A default whose files are absent is skipped with a note; only the
// first package (the server's default model) is required.
func (c *modelCmd) bootstrap(ctx context.Context, args []string) int {
	set := c.flags("[--home DIR] [--tessdata DIR] [--name NAME] [--lang LANG] [--chi-sim NAME] [--zh NAME] [--ppocr DIR] [--face DIR|none]")
	home := set.String("home", defaultHome(), "directory for the local signing key (keys/) and repository (models/)")
	tessdata := set.String("tessdata", tesseract.DefaultDataPath(), "directory holding the system's .traineddata files")
	name := set.String("name", "ocr-eng", "model name of the Tesseract package")
	lang := set.String("lang", "eng", "Tesseract language to package (its .traineddata, plus osd.traineddata when present)")
	chiName := set.String("chi-sim", "ocr-chi-sim", `model name of the Tesseract Simplified Chinese package, published when chi_sim.traineddata is installed; "" skips it`)
	zhName := set.String("zh", "ocr-zh", `model name of the PP-OCRv4 Chinese+English package (kind ocr-ppocr); "" skips it`)
	ppocrDir := set.String("ppocr", "", "directory holding the PP-OCRv4 files (default: $"+ppocr.V4ModelsEnv+", else the cache "+ppocr.V4SetupScript+" fills)")
	faceDir := set.String("face", "", `publish the face models of this directory (shared/models/face) instead of the built-in ones; "none" skips them`)
	if _, code, ok := c.parse(set, args, 0); !ok {
		return code
	}
	for _, n := range []string{*name, *chiName, *zhName} {
		if n != "" && !modelrepo.ValidName(n) {
			return c.usageError("model name %q is not valid", n)
		}
	}
	if *name == *chiName || *name == *zhName || (*zhName != "" && *zhName == *chiName) {
		return c.usageError("--name, --chi-sim and --zh must differ")
	}
	keys, repo := filepath.Join(*home, "keys"), filepath.Join(*home, "models")
	signer, pub, created, err := localKey(keys)
	if err != nil {
		return c.fail(err)
	}
	if created {
		fmt.Fprintf(c.stdout, "created signing key %s (public: %s)\n", filepath.Join(keys, signing.PrivateKeyFile), filepath.Join(keys, signing.PublicKeyFile))
	}
	main, err := tesseractPackage(*name, *lang, *tessdata)
	if err != nil {
		return c.fail(err)
	}
	pkgs := []systemPackage{main}
	var skipped []string
	if *chiName != "" {
		if p, err := tesseractPackage(*chiName, chiSimLang, *tessdata); err == nil {
			pkgs = append(pkgs, p)
		} else {
			skipped = append(skipped, fmt.Sprintf("%s (install tesseract-ocr-chi-sim: hack/setup.sh)", *chiName))
		}
	}
	if *zhName != "" {
		p, err := ppocrPackage(*zhName, *ppocrDir)
		switch {
		case err == nil:
			pkgs = append(pkgs, p)
		case *ppocrDir != "":
			return c.fail(err)
		default:
			skipped = append(skipped, fmt.Sprintf("%s (%v)", *zhName, err))
		}
	}
	faces, err := facePackages(*faceDir)
	if err != nil {
		return c.fail(err)
	}
	pkgs = append(pkgs, faces...)
	for _, p := range pkgs {
		v, published, err := publishSystemModel(ctx, repo, p, signer, pub)
		if err != nil {
			return c.fail(err)
		}
		if published {
			fmt.Fprintf(c.stdout, "published %s version %d (%s) in %s\n", p.name, v, strings.Join(p.fileNames(), ", "), repo)
		} else {
			fmt.Fprintf(c.stdout, "%s version %d is up to date in %s\n", p.name, v, repo)
		}
	}
	for _, s := range skipped {
		fmt.Fprintf(c.stdout, "skipped %s\n", s)
	}
	fmt.Fprintf(c.stdout, "serve it with: visionserve serve --models %s --trust-key %s\n", repo, filepath.Join(keys, signing.PublicKeyFile))
	if len(faces) > 0 {
		fmt.Fprintf(c.stdout, "face recognition from these packages: face: {detector_model: %s, embedder_model: %s} in the configuration (docs/faces.md)\n",
			faces[0].name, faces[1].name)
	}
	return 0
}

// chiSimLang is the language of the Tesseract Simplified Chinese package:
// chi_sim alone. In docs/ocr-evaluation.md it reads pages and prose lines
// better than chi_sim+eng (which reads digit lines better), and a single
// language loads from the verified bytes, not from the package directory.
const chiSimLang = "chi_sim"

// systemPackage is a package bootstrap publishes.
type systemPackage struct {
	name    string
	kind    manifest.Kind
	runtime json.RawMessage
	files   []sourceFile
}

// sourceFile is a file a package is made of: name in fsys.
type sourceFile struct {
	fsys fs.FS
	name string
}

func (p systemPackage) fileNames() []string {
	out := make([]string, len(p.files))
	for i, f := range p.files {
		out[i] = f.name
	}
	return out
}

// tesseractPackage is the ocr-tesseract package of lang's traineddata in
// dir, with osd.traineddata when present.
func tesseractPackage(name, lang, dir string) (systemPackage, error) {
	fsys := os.DirFS(dir)
	files := []sourceFile{{fsys, lang + ".traineddata"}}
	if _, err := fs.Stat(fsys, files[0].name); err != nil {
		return systemPackage{}, fmt.Errorf("%s: %w", name, err)
	}
	if _, err := fs.Stat(fsys, "osd.traineddata"); err == nil {
		files = append(files, sourceFile{fsys, "osd.traineddata"})
	}
	rt := map[string]any{"lang": lang}
	if lang == "eng" && sameDigest(filepath.Join(dir, "eng.traineddata"), debianEngSHA256) {
		// The calibration fitted for this very file: packaged, the
		// confidences stay what the built-in model reports.
		rt["calibration"] = config.DefaultCalibration
	}
	runtime, err := json.Marshal(rt)
	if err != nil {
		return systemPackage{}, err
	}
	return systemPackage{name: name, kind: manifest.KindOCRTesseract, runtime: runtime, files: files}, nil
}

// ppocrRuntime is the runtime of the PP-OCRv4 package: CTC recognition
// (the best Chinese row of docs/ocr-evaluation.md) with its
// 6,623-character dictionary and ppocr.V4Params' recogniser settings
// (input height 48, one line per run); the loader decodes params over
// ppocr.DefaultParams, so they are spelt out. "lang" is the language the
// package serves (Languages in the OCR core).
var ppocrRuntime = map[string]any{
	"recognizer": "ctc",
	"det":        ppocr.V4Det,
	"cls":        ppocr.V4Cls,
	"rec":        ppocr.V4Rec,
	"dict":       ppocr.V4Dict,
	"lang":       chiSimLang,
	"params":     map[string]any{"rec": ppocr.V4Params().Rec},
}

// ppocrPackage is the ocr-ppocr package of the PP-OCRv4 files in dir (""
// means ppocr.V4ModelsDir) with their licences from models/.
func ppocrPackage(name, dir string) (systemPackage, error) {
	if dir == "" {
		var err error
		if dir, err = ppocr.V4ModelsDir(); err != nil {
			return systemPackage{}, err
		}
	}
	fsys := os.DirFS(dir)
	var files []sourceFile
	for _, f := range ppocr.V4Files {
		if _, err := fs.Stat(fsys, f); err != nil {
			return systemPackage{}, fmt.Errorf("%s: %w (run %s)", name, err, ppocr.V4SetupScript)
		}
		files = append(files, sourceFile{fsys, f})
	}
	files = append(files, sourceFile{models.Files, models.PPOCRLicense}, sourceFile{models.Files, models.PPOCRNPMLicense})
	runtime, err := json.Marshal(ppocrRuntime)
	if err != nil {
		return systemPackage{}, err
	}
	return systemPackage{name: name, kind: manifest.KindOCRPPOCR, runtime: runtime, files: files}, nil
}

// facePackages are the face-detect and face-embed packages: YuNet
// (dynamic input: faster than the fixed 640x640 file on small images) and
// MobileFaceNet, each with its licence, from the binary's built-in models
// or from dir (shared/models/face; its licences when present). "none"
// publishes none. Their runtime options are the defaults, which the file
// configuration uses too.
func facePackages(dir string) ([]systemPackage, error) {
	if dir == "none" {
		return nil, nil
	}
	fsys := fs.FS(models.Files)
	if dir != "" {
		fsys = os.DirFS(dir)
	}
	var out []systemPackage
	for _, p := range []struct {
		name           string
		kind           manifest.Kind
		model, license string
	}{
		{"face-detect", manifest.KindFaceDetect, models.FaceDetector, models.FaceDetectorLicense},
		{"face-embed", manifest.KindFaceEmbed, models.FaceEmbedder, models.FaceEmbedderLicense},
	} {
		if _, err := fs.Stat(fsys, p.model); err != nil {
			return nil, fmt.Errorf("%s: %w", p.name, err)
		}
		files := []sourceFile{{fsys, p.model}}
		if _, err := fs.Stat(fsys, p.license); err == nil {
			files = append(files, sourceFile{fsys, p.license})
		}
		out = append(out, systemPackage{name: p.name, kind: p.kind, files: files})
	}
	return out, nil
}

// localKey loads the key in dir, creating it on first use.
func localKey(dir string) (*signing.Signer, *ecdsa.PublicKey, bool, error) {
	priv := filepath.Join(dir, signing.PrivateKeyFile)
	created := false
	if _, err := os.Stat(priv); errors.Is(err, fs.ErrNotExist) {
		if _, _, err := signing.GenerateKey(dir, signing.ECDSAP256SHA256); err != nil {
			return nil, nil, false, err
		}
		created = true
	}
	s, err := signing.LoadSigner(priv, "", "")
	if err != nil {
		return nil, nil, false, err
	}
	pub, err := signing.LoadPublicKey(filepath.Join(dir, signing.PublicKeyFile))
	if err != nil {
		return nil, nil, false, err
	}
	if !pub.Equal(s.PublicKey()) {
		return nil, nil, false, fmt.Errorf("%s does not belong to %s", signing.PublicKeyFile, priv)
	}
	return s, pub, created, nil
}

// publishSystemModel publishes p's files as the next version of p.name,
// unless the newest version already holds them and verifies with pub.
func publishSystemModel(ctx context.Context, repo string, p systemPackage, signer *signing.Signer, pub *ecdsa.PublicKey) (int, bool, error) {
	name, files := p.name, p.files
	mdir := filepath.Join(repo, name)
	if err := os.MkdirAll(mdir, 0o755); err != nil {
		return 0, false, err
	}
	latest := 0
	entries, err := os.ReadDir(mdir)
	if err != nil {
		return 0, false, err
	}
	for _, e := range entries {
		if n, ok := modelrepo.ParseVersion(e.Name()); ok && e.IsDir() && n > latest {
			latest = n
		}
	}
	verifier, err := signing.NewVerifier(signing.Trust{Keys: []*ecdsa.PublicKey{pub}})
	if err != nil {
		return 0, false, err
	}
	if latest > 0 {
		if samePackage(ctx, verifier, filepath.Join(mdir, strconv.Itoa(latest)), p) {
			return latest, false, nil
		}
	}
	next := latest + 1
	// Build under a temporary name in the same directory, check, then
	// rename: a watching server never sees a half-made version.
	staging, err := os.MkdirTemp(mdir, ".incoming-")
	if err != nil {
		return 0, false, err
	}
	defer os.RemoveAll(staging) // a no-op after the rename
	for _, f := range files {
		if err := copyFS(f.fsys, f.name, filepath.Join(staging, f.name)); err != nil {
			return 0, false, err
		}
	}
	if err := os.Chmod(staging, 0o755); err != nil {
		return 0, false, err
	}
	if _, err := manifest.Pack(ctx, staging, name, next, p.kind, p.runtime); err != nil {
		return 0, false, err
	}
	if _, err := signer.SignPackage(ctx, staging); err != nil {
		return 0, false, err
	}
	if _, err := verifier.VerifyPackage(ctx, staging); err != nil {
		return 0, false, err
	}
	if err := os.Rename(staging, filepath.Join(mdir, strconv.Itoa(next))); err != nil {
		return 0, false, err
	}
	return next, true, nil
}

// samePackage reports whether dir is a package verified by v with p's
// runtime options that lists exactly p's files, with the content they
// have in their sources. Runtime options count: a new release may change
// them for the same files (ocr-zh's recogniser settings).
func samePackage(ctx context.Context, v *signing.Verifier, dir string, p systemPackage) bool {
	pkg, err := v.VerifyPackage(ctx, dir)
	if err != nil || len(pkg.Manifest.Files) != len(p.files) || !sameJSON(pkg.Manifest.Runtime, p.runtime) {
		return false
	}
	src := map[string]sourceFile{}
	for _, f := range p.files {
		src[f.name] = f
	}
	for _, f := range pkg.Manifest.Files {
		s, ok := src[f.Path]
		if !ok {
			return false
		}
		sum, err := sha256FS(s.fsys, s.name)
		if err != nil || sum != f.SHA256 {
			return false
		}
	}
	return true
}

// sameJSON reports whether a and b hold the same JSON value (absent and
// null are the same).
func sameJSON(a, b json.RawMessage) bool {
	var va, vb any
	if len(a) > 0 && json.Unmarshal(a, &va) != nil {
		return false
	}
	if len(b) > 0 && json.Unmarshal(b, &vb) != nil {
		return false
	}
	return reflect.DeepEqual(va, vb)
}

func copyFile(from, to string) error {
	return copyFS(os.DirFS(filepath.Dir(from)), filepath.Base(from), to)
}

func copyFS(fsys fs.FS, name, to string) error {
	in, err := fsys.Open(name)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// debianEngSHA256 is the SHA-256 of Debian's tesseract-ocr-eng
// eng.traineddata (package 1:4.1.0-2, the fast integer LSTM), the file
// config.DefaultCalibration was fitted on.
const debianEngSHA256 = "7d4322bd2a7749724879683fc3912cb542f19906c83bcc1a52132556427170b2"

func sameDigest(name, want string) bool {
	got, err := sha256File(name)
	return err == nil && got == want
}

func sha256File(name string) (string, error) {
	return sha256FS(os.DirFS(filepath.Dir(name)), filepath.Base(name))
}

func sha256FS(fsys fs.FS, name string) (string, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
