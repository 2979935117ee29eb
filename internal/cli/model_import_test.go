package cli

import (
	"archive/zip"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/visionserve/visionserve/internal/modelrepo/manifest"
	"github.com/visionserve/visionserve/internal/modelrepo/signing/signingtest"
	"github.com/visionserve/visionserve/internal/testenv"
)

// TestOpenSSFFixturesThroughCLI runs every case of the shared model
// signing fixtures through `visionserve model verify` and `visionserve
// model import`: a case that must verify verifies and imports (and the
// imported package verifies with the repository's key); a case that must
// fail exits 1 with one line naming its reason, and publishes nothing.
func TestOpenSSFFixturesThroughCLI(t *testing.T) {
	base, cases := signingtest.Cases(t)
	keys := filepath.Join(t.TempDir(), "repo-keys")
	modelOK(t, "keygen", "--out", keys)
	repoKey, repoPub := filepath.Join(keys, "private.pem"), filepath.Join(keys, "public.pem")
	var passed, failed int
	for _, tc := range cases {
		t.Run(tc.ID, func(t *testing.T) {
			var trust []string
			if tc.PublicKey != "" {
				trust = append(trust, "--key", filepath.Join(base, tc.PublicKey))
			}
			for _, c := range tc.CertChain {
				trust = append(trust, "--ca", filepath.Join(base, c))
			}
			trust = append(trust, "--signature", filepath.Join(base, tc.Bundle))
			for _, p := range tc.IgnorePaths {
				trust = append(trust, "--ignore-paths", p)
			}
			if tc.IgnoreUnsignedFiles {
				trust = append(trust, "--ignore-unsigned-files")
			}
			model := filepath.Join(base, tc.Model)
			repo := t.TempDir()
			verify := append(append([]string{"model", "verify"}, trust...), model)
			imp := append(append([]string{"model", "import", "--repo", repo, "--sign-key", repoKey, "--name", "fixture", "--kind", "onnx"}, trust...), model)

			pass, want := tc.Want(t)
			for _, args := range [][]string{verify, imp} {
				stdout, stderr, code := runMain(t, args...)
				if pass {
					if code != 0 || stderr != "" {
						t.Fatalf("%s: %s: exit %d, stderr %q", tc.Reason, args[1], code, stderr)
					}
					continue
				}
				prefix := "visionserve model " + args[1] + ": " + string(want) + ":"
				if code != 1 || stdout != "" || !strings.HasPrefix(stderr, prefix) || strings.Count(stderr, "\n") != 1 {
					t.Fatalf("%s: %s: exit %d, stderr %q; want exit 1 and one line starting %q", tc.Reason, args[1], code, stderr, prefix)
				}
			}
			published := filepath.Join(repo, "fixture", "1")
			if !pass {
				if entries, _ := os.ReadDir(filepath.Join(repo, "fixture")); len(entries) != 0 {
					t.Errorf("a refused import left %v in the repository", entries)
				}
				failed++
				return
			}
			stdout, stderr, code := runMain(t, "model", "verify", "--key", repoPub, published)
			if code != 0 || !strings.Contains(stdout, "verified fixture version 1 (onnx)") {
				t.Fatalf("the imported package does not verify with the repository key: exit %d %s%s", code, stdout, stderr)
			}
			m, err := manifest.Load(published)
			if err != nil {
				t.Fatal(err)
			}
			if p := m.Provenance; p == nil || p.Format != manifest.ProvenanceOpenSSF || p.Signer.Method != tc.Method || len(p.Evidence) != 1 {
				t.Errorf("provenance %+v", m.Provenance)
			}
			passed++
		})
	}
	t.Logf("%d cases verified and imported, %d refused with their reason, through the CLI", passed, failed)
}

// shell runs a Debian tool in dir.
func shell(t *testing.T, dir, tool string, args ...string) {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		testenv.Missing(t, tool+" is not installed (hack/setup.sh): "+err.Error())
	}
	cmd := exec.Command(tool, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", tool, strings.Join(args, " "), err, out)
	}
}

// TestModelImportZip imports a zip made the way vendors make them (sha256sum,
// openssl dgst -sha256 -sigopt rsa_padding_mode:pss) through the CLI, and
// refuses a tampered one with one line and exit 1.
func TestModelImportZip(t *testing.T) {
	vendor := t.TempDir()
	shell(t, vendor, "openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "vendor.key")
	shell(t, vendor, "openssl", "pkey", "-in", "vendor.key", "-pubout", "-out", "vendor.pub")
	weights := make([]byte, 64<<10)
	if _, err := rand.Read(weights); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"model.onnx": weights, "config.json": []byte(`{"name": "vendor-embedder", "kind": "face-embed"}`)} {
		if err := os.WriteFile(filepath.Join(vendor, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	shell(t, vendor, "sh", "-c", "sha256sum model.onnx config.json > checksum.sha256")
	shell(t, vendor, "openssl", "dgst", "-sha256", "-sigopt", "rsa_padding_mode:pss", "-sign", "vendor.key", "-out", "signature.sig", "model.onnx")
	zipOf := func(name string, edit func(map[string][]byte)) string {
		entries := map[string][]byte{}
		for _, f := range []string{"model.onnx", "config.json", "checksum.sha256", "signature.sig"} {
			data, err := os.ReadFile(filepath.Join(vendor, f))
			if err != nil {
				t.Fatal(err)
			}
			entries[f] = data
		}
		if edit != nil {
			edit(entries)
		}
		var buf bytes.Buffer
		w := zip.NewWriter(&buf)
		for _, f := range []string{"model.onnx", "config.json", "checksum.sha256", "signature.sig"} {
			fw, err := w.Create(f)
			if err != nil {
				t.Fatal(err)
			}
			fw.Write(entries[f])
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	keys := filepath.Join(t.TempDir(), "keys")
	modelOK(t, "keygen", "--out", keys, "--alg", "sm2")
	repo := t.TempDir()
	base := []string{"import", "--repo", repo, "--sign-key", filepath.Join(keys, "private.pem"), "--key", filepath.Join(vendor, "vendor.pub")}

	out := modelOK(t, append(base, zipOf("embedder.zip", nil))...)
	if !strings.Contains(out, "imported vendor-embedder version 1 (face-embed) from embedder.zip (zip-rsa-pss, rsa-pss-sha256 by key ") {
		t.Errorf("import output %q", out)
	}
	out = modelOK(t, "verify", "--key", filepath.Join(keys, "public.pem"), filepath.Join(repo, "vendor-embedder", "1"))
	if !strings.Contains(out, "(sm2-sm3)") {
		t.Errorf("verify output %q", out)
	}
	modelFails(t, "bad_signature: signature.sig", append(base, zipOf("tampered.zip", func(e map[string][]byte) {
		e["model.onnx"][10] ^= 1
		e["checksum.sha256"] = []byte(fmt.Sprintf("%x  model.onnx\n", sha256.Sum256(e["model.onnx"])))
	}))...)
	modelFails(t, "digest_mismatch: model.onnx", append(base, zipOf("corrupt.zip", func(e map[string][]byte) { e["model.onnx"][10] ^= 1 }))...)
	code, _, errOut := runModelCmd(t, "import", "--repo", repo, zipOf("x.zip", nil))
	if code != 2 || !strings.Contains(errOut, "--sign-key is required") {
		t.Errorf("import without a signing key: exit %d, %q", code, errOut)
	}
}
