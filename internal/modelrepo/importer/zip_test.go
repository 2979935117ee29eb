package importer

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/visionserve/visionserve/internal/modelrepo"
	"github.com/visionserve/visionserve/internal/modelrepo/manifest"
	"github.com/visionserve/visionserve/internal/modelrepo/signing"
	"github.com/visionserve/visionserve/internal/testenv"
)

// run runs a Debian tool (openssl, sha256sum) in dir.
func run(t testing.TB, dir, tool string, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		testenv.Missing(t, tool+" is not installed: "+err.Error())
	}
	cmd := exec.Command(tool, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", tool, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// vendor is an RSA key made by openssl, and the zip packages it ships.
type vendor struct {
	t   testing.TB
	dir string
}

func newVendor(t testing.TB) *vendor {
	v := &vendor{t: t, dir: t.TempDir()}
	run(t, v.dir, "openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "vendor.key")
	run(t, v.dir, "openssl", "pkey", "-in", "vendor.key", "-pubout", "-out", "vendor.pub")
	return v
}

func (v *vendor) pub() string { return filepath.Join(v.dir, "vendor.pub") }

// layout writes the files of the simple zip layout the way a vendor's
// release script does: sha256sum for checksum.sha256 and
// `openssl dgst -sha256 -sigopt rsa_padding_mode:pss -sign` for
// signature.sig (PKCS#1 v1.5 when pss is false). tamper, when set,
// changes the files after checksumming and before signing.
func (v *vendor) layout(modelName string, model, config []byte, pss bool) map[string][]byte {
	t := v.t
	work := t.TempDir()
	must(t, os.WriteFile(filepath.Join(work, modelName), model, 0o644))
	must(t, os.WriteFile(filepath.Join(work, "config.json"), config, 0o644))
	sums := run(t, work, "sha256sum", modelName, "config.json")
	args := []string{"dgst", "-sha256"}
	if pss {
		args = append(args, "-sigopt", "rsa_padding_mode:pss")
	}
	args = append(args, "-sign", filepath.Join(v.dir, "vendor.key"), "-out", "signature.sig", modelName)
	run(t, work, "openssl", args...)
	sig, err := os.ReadFile(filepath.Join(work, "signature.sig"))
	must(t, err)
	return map[string][]byte{modelName: model, "config.json": config, "checksum.sha256": []byte(sums), "signature.sig": sig}
}

// writeZip writes entries (in name order, deflated) and then extra's.
func writeZip(t testing.TB, path string, entries map[string][]byte, extra func(w *zip.Writer)) {
	t.Helper()
	var buf bytes.Buffer
	w := zip.NewWriter(&buf)
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for k := range entries {
			if !yield(k) {
				return
			}
		}
	}) {
		f, err := w.Create(name)
		must(t, err)
		_, err = f.Write(entries[name])
		must(t, err)
	}
	if extra != nil {
		extra(w)
	}
	must(t, w.Close())
	must(t, os.WriteFile(path, buf.Bytes(), 0o644))
}

// repoImporter returns an Importer into a fresh repository, signing with
// a new repository key, trusting rsaPub files, and the repository's
// verifier.
func repoImporter(t testing.TB, limits Limits, rsaPub ...string) (*Importer, *signing.Verifier, string) {
	t.Helper()
	keys := t.TempDir()
	priv, pub, err := signing.GenerateKey(keys, signing.SM2SM3)
	must(t, err)
	signer, err := signing.LoadSigner(priv, "", "")
	must(t, err)
	trust, err := LoadTrust(rsaPub, nil)
	must(t, err)
	repo := t.TempDir()
	im, err := New(Options{Repo: repo, Signer: signer, Trust: trust, Limits: limits})
	must(t, err)
	pk, err := signing.LoadPublicKey(pub)
	must(t, err)
	v, err := signing.NewVerifier(signing.Trust{Keys: []*ecdsa.PublicKey{pk}})
	must(t, err)
	return im, v, repo
}

func randomBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	_, err := rand.Read(b)
	must(t, err)
	return b
}

const detectorConfig = `{"name": "detector", "kind": "face-detect", "runtime": {"file": "model.onnx"}, "vendor_notes": "kept as is"}`

// TestZipImport imports a vendor's zip made with sha256sum and openssl:
// the result is a package of the configured kind, signed with the
// repository's key, with the import's provenance and evidence.
func TestZipImport(t *testing.T) {
	ctx := context.Background()
	v := newVendor(t)
	im, repoVerifier, repo := repoImporter(t, Limits{}, v.pub())
	model := randomBytes(t, 300<<10)
	src := filepath.Join(t.TempDir(), "Vendor Detector v2.zip")
	writeZip(t, src, v.layout("model.onnx", model, []byte(detectorConfig), true), nil)

	res, err := im.Import(ctx, Source{Path: src})
	must(t, err)
	if res.Dir != filepath.Join(repo, "detector", "1") {
		t.Errorf("published at %s", res.Dir)
	}
	got, err := repoVerifier.VerifyPackage(ctx, res.Dir)
	must(t, err)
	m := got.Manifest
	var rt bytes.Buffer
	must(t, json.Compact(&rt, m.Runtime))
	if m.Name != "detector" || m.Version != 1 || m.Kind != manifest.KindFaceDetect || rt.String() != `{"file":"model.onnx"}` {
		t.Errorf("manifest %+v (runtime %s)", m, m.Runtime)
	}
	var paths []string
	for _, f := range m.Files {
		paths = append(paths, f.Path)
	}
	if want := []string{"config.json", "model.onnx", evidenceChecksum, evidenceSignature}; !slices.Equal(paths, want) {
		t.Errorf("files %v, want %v", paths, want)
	}
	p := m.Provenance
	if p == nil || p.Format != manifest.ProvenanceZip || p.Source != "Vendor Detector v2.zip" || len(p.SourceSHA256) != 64 ||
		p.Signer.Algorithm != "rsa-pss-sha256" || len(p.Signer.KeyID) != 64 || p.Imported.IsZero() {
		t.Errorf("provenance %+v", p)
	}
	data, err := os.ReadFile(filepath.Join(res.Dir, "model.onnx"))
	must(t, err)
	if !bytes.Equal(data, model) {
		t.Error("the published model differs from the vendor's")
	}

	// The same zip again gets the next version; a zip of a folder, with
	// a traineddata model and no config, becomes ocr-tesseract.
	res, err = im.Import(ctx, Source{Path: src})
	must(t, err)
	if filepath.Base(res.Dir) != "2" {
		t.Errorf("second import at %s", res.Dir)
	}
	entries := v.layout("deu.traineddata", randomBytes(t, 4096), []byte(`{}`), true)
	nested := map[string][]byte{}
	for k, val := range entries {
		nested["ocr-deu/"+k] = val
	}
	src = filepath.Join(t.TempDir(), "ocr-deu.zip")
	writeZip(t, src, nested, nil)
	res, err = im.Import(ctx, Source{Path: src})
	must(t, err)
	rt.Reset()
	must(t, json.Compact(&rt, res.Manifest.Runtime))
	if res.Manifest.Name != "ocr-deu" || res.Manifest.Kind != manifest.KindOCRTesseract || rt.String() != `{"lang":"deu"}` {
		t.Errorf("traineddata import: %+v %s", res.Manifest, res.Manifest.Runtime)
	}
}

// TestZipRefusals is the zip layout's tamper and trust table, and its
// hostile archives: each is refused with its reason, and nothing reaches
// the repository.
func TestZipRefusals(t *testing.T) {
	ctx := context.Background()
	v := newVendor(t)
	other := newVendor(t)
	model := randomBytes(t, 64<<10)
	good := func() map[string][]byte { return v.layout("model.onnx", model, []byte(detectorConfig), true) }
	without := func(name string) map[string][]byte {
		e := good()
		delete(e, name)
		return e
	}
	with := func(name string, data []byte) map[string][]byte {
		e := good()
		e[name] = data
		return e
	}
	flipped := append([]byte(nil), model...)
	flipped[100] ^= 1
	reChecksummed := v.layout("model.onnx", flipped, []byte(detectorConfig), true)
	reChecksummed["signature.sig"] = good()["signature.sig"]
	sig := good()["signature.sig"]
	badSig := append([]byte(nil), sig...)
	badSig[len(badSig)/2] ^= 1
	zeros := bytes.Repeat([]byte{0}, 4<<20)

	for _, tc := range []struct {
		name    string
		entries map[string][]byte
		extra   func(w *zip.Writer)
		limits  Limits
		trusted []string
		want    string
	}{
		{"model changed after signing", with("model.onnx", flipped), nil, Limits{}, nil, string(modelrepo.ReasonDigestMismatch)},
		{"model changed and checksum.sha256 redone", reChecksummed, nil, Limits{}, nil, string(modelrepo.ReasonBadSignature)},
		{"config.json changed after checksumming", with("config.json", []byte(`{"name": "detector", "kind": "onnx"}`)), nil, Limits{}, nil, string(modelrepo.ReasonDigestMismatch)},
		{"signature bit flipped", with("signature.sig", badSig), nil, Limits{}, nil, string(modelrepo.ReasonBadSignature)},
		{"signature truncated", with("signature.sig", sig[:100]), nil, Limits{}, nil, string(modelrepo.ReasonSignatureInvalid)},
		{"PKCS#1 v1.5 instead of PSS", v.layout("model.onnx", model, []byte(detectorConfig), false), nil, Limits{}, nil, string(modelrepo.ReasonBadSignature)},
		{"signed by an untrusted vendor", other.layout("model.onnx", model, []byte(detectorConfig), true), nil, Limits{}, nil, string(modelrepo.ReasonBadSignature)},
		{"no RSA key trusted", good(), nil, Limits{}, []string{}, string(modelrepo.ReasonUntrustedKey)},
		{"no checksum.sha256", without("checksum.sha256"), nil, Limits{}, nil, string(modelrepo.ReasonMissingFile)},
		{"no signature.sig", without("signature.sig"), nil, Limits{}, nil, string(modelrepo.ReasonMissingFile)},
		{"no model", without("model.onnx"), nil, Limits{}, nil, string(ReasonLayout)},
		{"checksum.sha256 omits the model", with("checksum.sha256", []byte(strings.Repeat("0", 64)+"  config.json\n")), nil, Limits{}, nil, string(ReasonLayout)},
		{"checksum.sha256 is not sha256sum output", with("checksum.sha256", []byte("model.onnx: OK\n")), nil, Limits{}, nil, string(ReasonLayout)},
		{"checksum lists a file not in the zip", with("checksum.sha256", append(good()["checksum.sha256"], []byte(strings.Repeat("0", 64)+"  weights.bin\n")...)), nil, Limits{}, nil, string(modelrepo.ReasonMissingFile)},
		{"an unexpected entry", with("install.sh", []byte("rm -rf /")), nil, Limits{}, nil, string(ReasonLayout)},
		{"two model files", with("eng.traineddata", []byte("x")), nil, Limits{}, nil, string(ReasonLayout)},
		{"config.json is not JSON", v.layout("model.onnx", model, []byte("kind=onnx"), true), nil, Limits{}, nil, string(ReasonConfigInvalid)},
		{"config.json names an unknown kind", v.layout("model.onnx", model, []byte(`{"kind": "tensorflow"}`), true), nil, Limits{}, nil, string(ReasonConfigInvalid)},
		{"zip-slip ../", good(), func(w *zip.Writer) { create(t, w, "../../etc/cron.d/evil", []byte("x")) }, Limits{}, nil, string(ReasonUnsafePath)},
		{"zip-slip absolute", good(), func(w *zip.Writer) { create(t, w, "/etc/passwd", []byte("x")) }, Limits{}, nil, string(ReasonUnsafePath)},
		{"zip-slip backslash", good(), func(w *zip.Writer) { create(t, w, `..\..\evil.dll`, []byte("x")) }, Limits{}, nil, string(ReasonUnsafePath)},
		{"symlink entry", good(), func(w *zip.Writer) {
			h := &zip.FileHeader{Name: "model-link.onnx", Method: zip.Store}
			h.SetMode(os.ModeSymlink | 0o777)
			f, err := w.CreateHeader(h)
			must(t, err)
			_, err = f.Write([]byte("/etc/shadow"))
			must(t, err)
		}, Limits{}, nil, string(ReasonUnsafePath)},
		{"zip bomb: compression ratio", good(), func(w *zip.Writer) { create(t, w, "padding.bin", zeros) }, Limits{}, nil, string(ReasonTooLarge)},
		{"zip bomb: declared size over the limit", good(), nil, Limits{MaxFileBytes: 32 << 10}, nil, string(ReasonTooLarge)},
		{"zip bomb: too many entries", good(), func(w *zip.Writer) {
			for i := range 10 {
				create(t, w, "dir/"+strings.Repeat("x", i+1), nil)
			}
		}, Limits{MaxEntries: 8}, nil, string(ReasonTooLarge)},
		{"zip bomb: lies about its size", without("model.onnx"), func(w *zip.Writer) {
			var deflated bytes.Buffer
			fw, _ := flate.NewWriter(&deflated, flate.BestCompression)
			fw.Write(bytes.Repeat([]byte("A"), 1<<20))
			fw.Close()
			f, err := w.CreateRaw(&zip.FileHeader{Name: "model.onnx", Method: zip.Deflate, CRC32: 0, CompressedSize64: uint64(deflated.Len()), UncompressedSize64: 1000})
			must(t, err)
			_, err = f.Write(deflated.Bytes())
			must(t, err)
		}, Limits{}, nil, string(ReasonArchiveInvalid)},
		{"encrypted entry", without("model.onnx"), func(w *zip.Writer) {
			f, err := w.CreateRaw(&zip.FileHeader{Name: "model.onnx", Method: zip.Store, Flags: 0x1, CompressedSize64: 4, UncompressedSize64: 4})
			must(t, err)
			_, err = f.Write([]byte("abcd"))
			must(t, err)
		}, Limits{}, nil, string(ReasonArchiveInvalid)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			trusted := []string{v.pub()}
			if tc.trusted != nil {
				trusted = tc.trusted
			}
			im, _, repo := repoImporter(t, tc.limits, trusted...)
			src := filepath.Join(t.TempDir(), "vendor.zip")
			writeZip(t, src, tc.entries, tc.extra)
			_, err := im.Import(ctx, Source{Path: src})
			if got := ReasonOf(err); got != tc.want {
				t.Fatalf("reason %q, want %q (%v)", got, tc.want, err)
			}
			if strings.ContainsAny(err.Error(), "\n\r") {
				t.Errorf("the error is not one line: %q", err)
			}
			if entries, _ := os.ReadDir(repo); len(entries) != 0 {
				t.Errorf("a refused import wrote into the repository: %v", entries)
			}
		})
	}

	t.Run("not a zip", func(t *testing.T) {
		im, _, _ := repoImporter(t, Limits{}, v.pub())
		src := filepath.Join(t.TempDir(), "vendor.zip")
		must(t, os.WriteFile(src, []byte("PK\x03\x04 but not really"), 0o644))
		_, err := im.Import(ctx, Source{Path: src})
		if ReasonOf(err) != string(ReasonArchiveInvalid) {
			t.Errorf("%v", err)
		}
	})
	t.Run("an existing version is never overwritten", func(t *testing.T) {
		im, _, repo := repoImporter(t, Limits{}, v.pub())
		src := filepath.Join(t.TempDir(), "vendor.zip")
		writeZip(t, src, good(), nil)
		_, err := im.Import(ctx, Source{Path: src, Version: 4})
		must(t, err)
		_, err = im.Import(ctx, Source{Path: src, Version: 4})
		if ReasonOf(err) != string(ReasonVersionExists) {
			t.Errorf("%v", err)
		}
		if entries, _ := os.ReadDir(filepath.Join(repo, "detector")); len(entries) != 1 {
			t.Errorf("the repository holds %v", entries)
		}
	})
	t.Run("a kind that does not fit the model file", func(t *testing.T) {
		im, _, _ := repoImporter(t, Limits{}, v.pub())
		src := filepath.Join(t.TempDir(), "vendor.zip")
		writeZip(t, src, good(), nil)
		_, err := im.Import(ctx, Source{Path: src, Kind: manifest.KindOCRTesseract})
		if ReasonOf(err) != string(ReasonConfigInvalid) {
			t.Errorf("%v", err)
		}
	})
}

func create(t testing.TB, w *zip.Writer, name string, data []byte) {
	t.Helper()
	f, err := w.Create(name)
	must(t, err)
	_, err = f.Write(data)
	must(t, err)
}
