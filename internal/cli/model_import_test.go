package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/visionserve/visionserve/internal/modelrepo/manifest"
	"github.com/visionserve/visionserve/internal/modelrepo/signing/signingtest"
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
