package manifest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/visionserve/visionserve/internal/modelrepo"
)

// writeTree creates files (slash paths -> content) under a new temp dir.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for rel, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

var sampleFiles = map[string]string{
	"weights.onnx":    "0123456789abcdef",
	"dict/en.txt":     "a\nb\nc\n",
	"dict/empty.bin":  "",
	".hidden/cfg":     "x",
	"subdir/a/b/c.pb": "deep",
}

func pack(t *testing.T, dir string) *Manifest {
	t.Helper()
	m, err := Pack(context.Background(), dir, "ocr-eng", 3, KindOCRPPOCR, json.RawMessage(`{"lang":"eng","threads":1}`))
	if err != nil {
		t.Fatalf("Pack: %v", err)
	}
	return m
}

func wantReason(t *testing.T, err error, want modelrepo.Reason) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s", want)
	}
	if got := modelrepo.ReasonOf(err); got != want {
		t.Fatalf("reason = %s, want %s (err: %v)", got, want, err)
	}
	if !errors.Is(err, want) {
		t.Fatalf("errors.Is(err, %s) = false (err: %v)", want, err)
	}
}

func TestPackLoadVerify(t *testing.T) {
	files := map[string]string{}
	for k, v := range sampleFiles {
		files[k] = v
	}
	// Excluded names must not be listed.
	files[SignatureFileName] = "stale signature"
	files[".git/HEAD"] = "ref: refs/heads/main\n"
	files[".gitignore"] = "*.tmp\n"
	dir := writeTree(t, files)

	m := pack(t, dir)
	if len(m.Files) != len(sampleFiles) {
		t.Fatalf("listed %d files, want %d: %+v", len(m.Files), len(sampleFiles), m.Files)
	}
	for i, f := range m.Files {
		content, ok := sampleFiles[f.Path]
		if !ok {
			t.Fatalf("unexpected file listed: %q", f.Path)
		}
		if f.SHA256 != sum(content) || f.Size != int64(len(content)) {
			t.Errorf("%s: got %s/%d, want %s/%d", f.Path, f.SHA256, f.Size, sum(content), len(content))
		}
		if i > 0 && m.Files[i-1].Path >= f.Path {
			t.Errorf("files not sorted: %q before %q", m.Files[i-1].Path, f.Path)
		}
	}

	loaded, err := VerifyFiles(context.Background(), dir)
	if err != nil {
		t.Fatalf("VerifyFiles: %v", err)
	}
	if loaded.Name != "ocr-eng" || loaded.Version != 3 || loaded.Kind != KindOCRPPOCR || !loaded.Created.Equal(m.Created) {
		t.Errorf("loaded header %+v, want %+v", loaded, m)
	}
	var rt map[string]any
	if err := json.Unmarshal(loaded.Runtime, &rt); err != nil || rt["lang"] != "eng" {
		t.Errorf("runtime = %s (%v)", loaded.Runtime, err)
	}
}

func TestVerifyRejectsTampering(t *testing.T) {
	ctx := context.Background()
	// One case per file for the byte flip: any file, not just the first.
	for rel := range sampleFiles {
		if sampleFiles[rel] == "" {
			continue
		}
		t.Run("flip "+rel, func(t *testing.T) {
			dir := writeTree(t, sampleFiles)
			pack(t, dir)
			p := filepath.Join(dir, filepath.FromSlash(rel))
			data, _ := os.ReadFile(p)
			data[len(data)/2] ^= 0x01
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := VerifyFiles(ctx, dir)
			wantReason(t, err, modelrepo.ReasonDigestMismatch)
			var re *modelrepo.Error
			if !errors.As(err, &re) || re.Path != rel || re.Expected != "sha256:"+sum(sampleFiles[rel]) || re.Actual != "sha256:"+sum(string(data)) {
				t.Errorf("error %+v does not carry path and both digests", re)
			}
		})
	}

	cases := []struct {
		name   string
		mutate func(t *testing.T, dir string)
		want   modelrepo.Reason
	}{
		{"remove file", func(t *testing.T, dir string) {
			must(t, os.Remove(filepath.Join(dir, "dict", "en.txt")))
		}, modelrepo.ReasonMissingFile},
		{"remove empty file", func(t *testing.T, dir string) {
			must(t, os.Remove(filepath.Join(dir, "dict", "empty.bin")))
		}, modelrepo.ReasonMissingFile},
		{"add file", func(t *testing.T, dir string) {
			must(t, os.WriteFile(filepath.Join(dir, "extra.bin"), []byte("x"), 0o644))
		}, modelrepo.ReasonUnlistedFile},
		{"add nested file", func(t *testing.T, dir string) {
			must(t, os.WriteFile(filepath.Join(dir, "subdir", "a", "x"), nil, 0o644))
		}, modelrepo.ReasonUnlistedFile},
		{"rename file", func(t *testing.T, dir string) {
			must(t, os.Rename(filepath.Join(dir, "weights.onnx"), filepath.Join(dir, "weights2.onnx")))
		}, modelrepo.ReasonMissingFile},
		{"append byte", func(t *testing.T, dir string) {
			f, err := os.OpenFile(filepath.Join(dir, "weights.onnx"), os.O_APPEND|os.O_WRONLY, 0)
			must(t, err)
			_, err = f.Write([]byte{0})
			must(t, err)
			must(t, f.Close())
		}, modelrepo.ReasonDigestMismatch},
		{"replace with escaping symlink", func(t *testing.T, dir string) {
			outside := filepath.Join(t.TempDir(), "w")
			must(t, os.WriteFile(outside, []byte(sampleFiles["weights.onnx"]), 0o644))
			must(t, os.Remove(filepath.Join(dir, "weights.onnx")))
			must(t, os.Symlink(outside, filepath.Join(dir, "weights.onnx")))
		}, modelrepo.ReasonUnlistedFile},
		{"fifo", func(t *testing.T, dir string) {
			if err := syscall.Mkfifo(filepath.Join(dir, "pipe"), 0o644); err != nil {
				t.Skipf("mkfifo: %v", err)
			}
		}, modelrepo.ReasonUnlistedFile},
		{"manifest removed", func(t *testing.T, dir string) {
			must(t, os.Remove(filepath.Join(dir, FileName)))
		}, modelrepo.ReasonManifestInvalid},
		{"manifest corrupted", func(t *testing.T, dir string) {
			must(t, os.WriteFile(filepath.Join(dir, FileName), []byte(`{"schema_version":1,`), 0o644))
		}, modelrepo.ReasonManifestInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeTree(t, sampleFiles)
			pack(t, dir)
			tc.mutate(t, dir)
			_, err := VerifyFiles(ctx, dir)
			wantReason(t, err, tc.want)
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestVerifyDigests(t *testing.T) {
	ctx := context.Background()
	dir := writeTree(t, sampleFiles)
	m := pack(t, dir)
	digests := map[string]string{}
	for _, f := range m.Files {
		digests[f.Path] = f.SHA256
	}
	if err := m.VerifyDigests(ctx, dir, digests); err != nil {
		t.Fatalf("VerifyDigests: %v", err)
	}
	digests["weights.onnx"] = sum("something else")
	wantReason(t, m.VerifyDigests(ctx, dir, digests), modelrepo.ReasonDigestMismatch)
	delete(digests, "weights.onnx")
	wantReason(t, m.VerifyDigests(ctx, dir, digests), modelrepo.ReasonManifestInvalid)
}

func TestPackSymlinks(t *testing.T) {
	ctx := context.Background()
	t.Run("inside the package", func(t *testing.T) {
		dir := writeTree(t, map[string]string{"blobs/abc": "weights"})
		must(t, os.Symlink(filepath.Join("blobs", "abc"), filepath.Join(dir, "model.onnx")))
		m := pack(t, dir)
		if len(m.Files) != 2 || m.Files[1].Path != "model.onnx" || m.Files[1].SHA256 != sum("weights") {
			t.Fatalf("files = %+v", m.Files)
		}
		if _, err := VerifyFiles(ctx, dir); err != nil {
			t.Fatalf("VerifyFiles: %v", err)
		}
	})
	t.Run("escaping the package", func(t *testing.T) {
		dir := writeTree(t, map[string]string{"a": "a"})
		outside := writeTree(t, map[string]string{"secret": "s"})
		must(t, os.Symlink(filepath.Join(outside, "secret"), filepath.Join(dir, "b")))
		_, err := Pack(ctx, dir, "m", 1, KindONNX, nil)
		wantReason(t, err, modelrepo.ReasonUnlistedFile)
		if !strings.Contains(err.Error(), "outside") {
			t.Errorf("error %q does not say the link leaves the package", err)
		}
		rel := writeTree(t, map[string]string{"a": "a"})
		must(t, os.Symlink("../../etc/passwd", filepath.Join(rel, "c")))
		_, err = Pack(ctx, rel, "m", 1, KindONNX, nil)
		wantReason(t, err, modelrepo.ReasonUnlistedFile)
	})
	t.Run("to a directory", func(t *testing.T) {
		dir := writeTree(t, map[string]string{"d/a": "a"})
		must(t, os.Symlink("d", filepath.Join(dir, "e")))
		_, err := Pack(ctx, dir, "m", 1, KindONNX, nil)
		wantReason(t, err, modelrepo.ReasonUnlistedFile)
	})
}

func TestPackRejectsBadInput(t *testing.T) {
	ctx := context.Background()
	dir := writeTree(t, map[string]string{"a": "a"})
	cases := []struct {
		name    string
		mname   string
		version int
		kind    Kind
		runtime string
	}{
		{"uppercase name", "OCR", 1, KindONNX, ""},
		{"empty name", "", 1, KindONNX, ""},
		{"slash in name", "a/b", 1, KindONNX, ""},
		{"zero version", "m", 0, KindONNX, ""},
		{"negative version", "m", -1, KindONNX, ""},
		{"unknown kind", "m", 1, "tensorflow", ""},
		{"runtime array", "m", 1, KindONNX, `[1]`},
		{"runtime not json", "m", 1, KindONNX, `{`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var rt json.RawMessage
			if tc.runtime != "" {
				rt = json.RawMessage(tc.runtime)
			}
			_, err := Pack(ctx, dir, tc.mname, tc.version, tc.kind, rt)
			wantReason(t, err, modelrepo.ReasonManifestInvalid)
		})
	}
	if _, err := os.Stat(filepath.Join(dir, FileName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a rejected Pack wrote %s", FileName)
	}
	empty := t.TempDir()
	_, err := Pack(ctx, empty, "m", 1, KindONNX, nil)
	wantReason(t, err, modelrepo.ReasonManifestInvalid)
}

const validManifest = `{
  "schema_version": 1,
  "name": "face-yunet",
  "version": 2,
  "kind": "face-detect",
  "runtime": {"input": [320, 320]},
  "files": [
    {"path": "yunet.onnx", "sha256": "` + "6f1e2cbb3f16b1d5f0b58f6c2d6c0c1d0b4b6d6cd3a5e1b4b2a7f0e4c1d2e3f4" + `", "size": 12}
  ],
  "created": "2026-01-02T03:04:05Z"
}`

func TestParseStrict(t *testing.T) {
	if _, err := Parse([]byte(validManifest)); err != nil {
		t.Fatalf("valid manifest rejected: %v", err)
	}
	replace := func(old, new string) string {
		if !strings.Contains(validManifest, old) {
			t.Fatalf("test bug: %q not in the valid manifest", old)
		}
		return strings.Replace(validManifest, old, new, 1)
	}
	sha := `"sha256": "6f1e`
	type bad struct{ doc, says string }
	cases := map[string]bad{
		"unknown field":        {replace(`"name"`, `"nmae": "x", "name"`), "unknown field"},
		"duplicate key":        {replace(`"version": 2,`, `"version": 2, "version": 3,`), "duplicate key"},
		"duplicate nested key": {replace(`"size": 12`, `"size": 12, "size": 13`), "duplicate key"},
		"trailing data":        {validManifest + ` {}`, "trailing data"},
		"version zero":         {replace(`"version": 2`, `"version": 0`), "invalid version"},
		"version float":        {replace(`"version": 2`, `"version": 2.5`), "cannot unmarshal"},
		"version string":       {replace(`"version": 2`, `"version": "2"`), "cannot unmarshal"},
		"schema 2":             {replace(`"schema_version": 1`, `"schema_version": 2`), "schema_version"},
		"no schema":            {replace(`"schema_version": 1,`, ``), "schema_version"},
		"bad kind":             {replace(`"face-detect"`, `"face"`), "unknown kind"},
		"bad name":             {replace(`"face-yunet"`, `"../x"`), "invalid name"},
		"absolute path":        {replace(`"yunet.onnx"`, `"/etc/passwd"`), "absolute"},
		"dotdot path":          {replace(`"yunet.onnx"`, `"../yunet.onnx"`), "clean"},
		"inner dotdot":         {replace(`"yunet.onnx"`, `"a/../yunet.onnx"`), "clean"},
		"dot element":          {replace(`"yunet.onnx"`, `"./yunet.onnx"`), "clean"},
		"double slash":         {replace(`"yunet.onnx"`, `"a//yunet.onnx"`), "clean"},
		"trailing slash":       {replace(`"yunet.onnx"`, `"a/"`), "clean"},
		"backslash":            {replace(`"yunet.onnx"`, `"a\\b"`), "backslash"},
		"control char":         {replace(`"yunet.onnx"`, `"a\nb"`), "control"},
		"lists manifest":       {replace(`"yunet.onnx"`, `"manifest.json"`), "reserved"},
		"lists signature":      {replace(`"yunet.onnx"`, `"model.sig"`), "reserved"},
		"lists .git":           {replace(`"yunet.onnx"`, `".git/config"`), "reserved"},
		"uppercase digest":     {replace(sha, `"sha256": "6F1E`), "hex"},
		"short digest":         {replace(sha, `"sha256": "6f1`), "hex"},
		"negative size":        {replace(`"size": 12`, `"size": -1`), "negative"},
		"runtime array":        {replace(`{"input": [320, 320]}`, `[320]`), "runtime"},
		"runtime null":         {replace(`{"input": [320, 320]}`, `null`), "runtime"},
		"no files": {replace(`
    {"path": "yunet.onnx", "sha256": "6f1e2cbb3f16b1d5f0b58f6c2d6c0c1d0b4b6d6cd3a5e1b4b2a7f0e4c1d2e3f4", "size": 12}
`, ``), "no files"},
		"no created":    {replace(`,`+"\n"+`  "created": "2026-01-02T03:04:05Z"`, ``), "created"},
		"bad created":   {replace(`2026-01-02T03:04:05Z`, `yesterday`), "cannot parse"},
		"not an object": {`[]`, "cannot unmarshal"},
		"empty":         {``, "EOF"},
		"duplicate file": {replace(`
  ]`, `,
    {"path": "yunet.onnx", "sha256": "`+strings.Repeat("0", 64)+`", "size": 1}
  ]`), "listed twice"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			m, err := Parse([]byte(tc.doc))
			if err == nil {
				t.Fatalf("accepted: %+v", m)
			}
			wantReason(t, err, modelrepo.ReasonManifestInvalid)
			if !strings.Contains(err.Error(), tc.says) {
				t.Errorf("error %q does not mention %q", err, tc.says)
			}
		})
	}
	if _, err := Parse([]byte(strings.Repeat(" ", MaxManifestBytes+1))); err == nil {
		t.Error("oversized manifest accepted")
	}
}

func TestReasonOf(t *testing.T) {
	base := modelrepo.NewDigestMismatch("w.onnx", "sha256:aa", "sha256:bb")
	wrapped := fmt.Errorf("load ocr-eng v3: %w", base)
	if got := modelrepo.ReasonOf(wrapped); got != modelrepo.ReasonDigestMismatch {
		t.Errorf("ReasonOf(wrapped) = %q", got)
	}
	if !errors.Is(wrapped, modelrepo.ReasonDigestMismatch) || errors.Is(wrapped, modelrepo.ReasonMissingFile) {
		t.Error("errors.Is does not follow the reason")
	}
	if got, want := base.Error(), "digest_mismatch: w.onnx: expected sha256:aa, got sha256:bb"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if got := modelrepo.ReasonOf(nil); got != "" {
		t.Errorf("ReasonOf(nil) = %q", got)
	}
	if got := modelrepo.ReasonOf(errors.New("plain")); got != modelrepo.ReasonUnknown {
		t.Errorf("ReasonOf(plain) = %q", got)
	}
	if got := modelrepo.ReasonOf(fmt.Errorf("x: %w", modelrepo.ReasonWarmupError)); got != modelrepo.ReasonWarmupError {
		t.Errorf("ReasonOf(bare reason) = %q", got)
	}
	if got := modelrepo.ReasonOf(&modelrepo.Error{Reason: "made_up"}); got != modelrepo.ReasonUnknown {
		t.Errorf("ReasonOf(invalid reason) = %q, want unknown", got)
	}
	inject := modelrepo.NewError(modelrepo.ReasonUnlistedFile, "evil\nvisionserve: ok", strings.Repeat("x", 10000))
	if msg := inject.Error(); strings.ContainsAny(msg, "\n\r") || len(msg) > 2000 {
		t.Errorf("Error() is not one bounded line: %d bytes, %q...", len(msg), msg[:40])
	}
	for _, r := range modelrepo.Reasons() {
		if !r.Valid() || strings.ToLower(string(r)) != string(r) || strings.ContainsAny(string(r), " -") {
			t.Errorf("reason %q is not a valid snake_case label", r)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(validManifest))
	f.Add([]byte(`{"schema_version":1,"name":"a","version":1,"kind":"onnx","files":[{"path":"a","sha256":"` + strings.Repeat("a", 64) + `","size":0}],"created":"2026-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"a":{"b":[{"c":1,"c":2}]}}`))
	f.Add([]byte(`[{}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data)
		if err != nil {
			if modelrepo.ReasonOf(err) != modelrepo.ReasonManifestInvalid {
				t.Fatalf("parse error with reason %s: %v", modelrepo.ReasonOf(err), err)
			}
			return
		}
		// Whatever parses must survive a round trip unchanged.
		out, err := m.Marshal()
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("re-parse of %s: %v", out, err)
		}
		out2, _ := again.Marshal()
		if string(out) != string(out2) {
			t.Fatalf("round trip changed the manifest:\n%s\n%s", out, out2)
		}
	})
}

func TestValidName(t *testing.T) {
	for name, want := range map[string]bool{
		"ocr-eng": true, "face.yunet_2": true, "a": true, "0": true, strings.Repeat("a", 64): true,
		"": false, "-a": false, ".a": false, "_a": false, "a..b": false, "OCR": false, "a b": false,
		"a/b": false, "é": false, strings.Repeat("a", 65): false,
	} {
		if got := ValidName(name); got != want {
			t.Errorf("ValidName(%q) = %v, want %v", name, got, want)
		}
	}
}

// TestProvenance: an import's record round-trips through Write and Load,
// and a malformed one is refused like any other bad field.
func TestProvenance(t *testing.T) {
	dir := writeTree(t, map[string]string{"model.onnx": "w", "provenance/signature.sig": "s"})
	m := pack(t, dir)
	m.Provenance = &Provenance{
		Format: ProvenanceZip, Source: "vendor-model.zip", SourceSHA256: sum("zip"),
		Imported: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC),
		Signer:   ProvenanceSigner{Method: "key", Algorithm: "rsa-pss-sha256", KeyID: sum("key")},
		Evidence: []string{"provenance/signature.sig"},
	}
	must(t, Write(dir, m))
	got, err := Load(dir)
	must(t, err)
	if got.Provenance == nil || got.Provenance.Signer.Algorithm != "rsa-pss-sha256" || got.Provenance.Source != "vendor-model.zip" {
		t.Fatalf("provenance %+v", got.Provenance)
	}
	for name, edit := range map[string]func(p *Provenance){
		"unknown format":     func(p *Provenance) { p.Format = "tarball" },
		"no source":          func(p *Provenance) { p.Source = "" },
		"control characters": func(p *Provenance) { p.Source = "a\nb" },
		"bad digest":         func(p *Provenance) { p.SourceSHA256 = "abc" },
		"unlisted evidence":  func(p *Provenance) { p.Evidence = []string{"provenance/other.sig"} },
		"no import time":     func(p *Provenance) { p.Imported = time.Time{} },
	} {
		bad := *got
		p := *got.Provenance
		edit(&p)
		bad.Provenance = &p
		if err := bad.Validate(); modelrepo.ReasonOf(err) != modelrepo.ReasonManifestInvalid {
			t.Errorf("%s: %v", name, err)
		}
	}
}
