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
	"strconv"
	"strings"

	"github.com/visionserve/visionserve/internal/config"
	"github.com/visionserve/visionserve/internal/engine/tesseract"
	"github.com/visionserve/visionserve/internal/modelrepo"
	"github.com/visionserve/visionserve/internal/modelrepo/manifest"
	"github.com/visionserve/visionserve/internal/modelrepo/signing"
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

// bootstrap makes the system's Tesseract model a signed package, so that
// the first run serves packages like any other: it creates a local signing
// key once (HOME/keys), and publishes <lang>.traineddata and
// osd.traineddata as HOME/models/<name>/<N>, signed with it. When the
// newest published version already holds the same files and verifies with
// the key, it does nothing; when the system's files changed (a package
// upgrade), it publishes version N+1, which a running server swaps in.
// With --face DIR it does the same for the face models of DIR (the shared
// YuNet and MobileFaceNet files): face-detect and face-embed.
func (c *modelCmd) bootstrap(ctx context.Context, args []string) int {
	set := c.flags("[--home DIR] [--tessdata DIR] [--name NAME] [--lang LANG] [--face DIR]")
	home := set.String("home", defaultHome(), "directory for the local signing key (keys/) and repository (models/)")
	tessdata := set.String("tessdata", tesseract.DefaultDataPath(), "directory holding the system's .traineddata files")
	name := set.String("name", "ocr-eng", "model name")
	lang := set.String("lang", "eng", "Tesseract language to package (its .traineddata, plus osd.traineddata when present)")
	faceDir := set.String("face", "", "also package the face models of this directory (shared/models/face) as face-detect and face-embed")
	if _, code, ok := c.parse(set, args, 0); !ok {
		return code
	}
	if !modelrepo.ValidName(*name) {
		return c.usageError("--name %q is not a valid model name", *name)
	}
	keys, repo := filepath.Join(*home, "keys"), filepath.Join(*home, "models")
	signer, pub, created, err := localKey(keys)
	if err != nil {
		return c.fail(err)
	}
	if created {
		fmt.Fprintf(c.stdout, "created signing key %s (public: %s)\n", filepath.Join(keys, signing.PrivateKeyFile), filepath.Join(keys, signing.PublicKeyFile))
	}
	files := []string{*lang + ".traineddata"}
	if _, err := os.Stat(filepath.Join(*tessdata, "osd.traineddata")); err == nil {
		files = append(files, "osd.traineddata")
	}
	rt := map[string]any{"lang": *lang}
	if *lang == "eng" && sameDigest(filepath.Join(*tessdata, "eng.traineddata"), debianEngSHA256) {
		// The calibration fitted for this very file: packaged, the
		// confidences stay what the built-in model reports.
		rt["calibration"] = config.DefaultCalibration
	}
	runtime, err := json.Marshal(rt)
	if err != nil {
		return c.fail(err)
	}
	pkgs := []systemPackage{{name: *name, kind: manifest.KindOCRTesseract, runtime: runtime, src: *tessdata, files: files}}
	if *faceDir != "" {
		for _, p := range facePackages {
			files := []string{p.model}
			if _, err := os.Stat(filepath.Join(*faceDir, p.license)); err == nil {
				files = append(files, p.license)
			}
			pkgs = append(pkgs, systemPackage{name: p.name, kind: p.kind, src: *faceDir, files: files})
		}
	}
	for _, p := range pkgs {
		v, published, err := publishSystemModel(ctx, repo, p, signer, pub)
		if err != nil {
			return c.fail(err)
		}
		if published {
			fmt.Fprintf(c.stdout, "published %s version %d (%s) in %s\n", p.name, v, strings.Join(p.files, ", "), repo)
		} else {
			fmt.Fprintf(c.stdout, "%s version %d is up to date in %s\n", p.name, v, repo)
		}
	}
	fmt.Fprintf(c.stdout, "serve it with: visionserve serve --models %s --trust-key %s\n", repo, filepath.Join(keys, signing.PublicKeyFile))
	if *faceDir != "" {
		fmt.Fprintf(c.stdout, "face recognition from these packages: face: {detector_model: %s, embedder_model: %s} in the configuration (docs/faces.md)\n",
			facePackages[0].name, facePackages[1].name)
	}
	return 0
}

// systemPackage is a package bootstrap publishes: files of src.
type systemPackage struct {
	name    string
	kind    manifest.Kind
	runtime json.RawMessage
	src     string
	files   []string
}

// facePackages are the face models bootstrap --face packages, from the
// shared directory's files (its SOURCES.md has their provenance): the
// dynamic-input YuNet (faster than the fixed 640x640 file on small
// images) and MobileFaceNet, each with its licence when present. Their
// runtime options are the defaults, which the file configuration uses
// too.
var facePackages = []struct {
	name           string
	kind           manifest.Kind
	model, license string
}{
	{"face-detect", manifest.KindFaceDetect, "yunet_s_dynamic.onnx", "LICENSE.ShiqiYu-libfacedetection.train"},
	{"face-embed", manifest.KindFaceEmbed, "MobileFaceNet.onnx", "LICENSE.foamliu-MobileFaceNet"},
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
	name, src, files := p.name, p.src, p.files
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
		if sameFiles(ctx, verifier, filepath.Join(mdir, strconv.Itoa(latest)), src, files) {
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
		if err := copyFile(filepath.Join(src, f), filepath.Join(staging, f)); err != nil {
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

// sameFiles reports whether dir is a package verified by v that lists
// exactly files, with the content they have in src.
func sameFiles(ctx context.Context, v *signing.Verifier, dir, src string, files []string) bool {
	pkg, err := v.VerifyPackage(ctx, dir)
	if err != nil || len(pkg.Manifest.Files) != len(files) {
		return false
	}
	for _, f := range pkg.Manifest.Files {
		sum, err := sha256File(filepath.Join(src, f.Path))
		if err != nil || sum != f.SHA256 {
			return false
		}
	}
	return true
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
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
	f, err := os.Open(name)
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
