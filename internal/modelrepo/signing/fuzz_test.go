package signing

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/visionserve/visionserve/internal/modelrepo"
	"github.com/visionserve/visionserve/internal/testenv"
)

// fuzzSeeds returns a bundle signed here plus, when the shared fixtures are
// present, the upstream and derived bundles.
func fuzzSeeds(f *testing.F) [][]byte {
	f.Helper()
	dir := f.TempDir()
	must(f, os.WriteFile(filepath.Join(dir, "w"), []byte("weights"), 0o644))
	own, err := mustSigner(f, newKey(f)).Sign(context.Background(), dir, SignOptions{})
	must(f, err)
	seeds := [][]byte{own, []byte(`{}`), []byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}`)}
	if shared := testenv.SharedDir(); shared != "" {
		paths, _ := filepath.Glob(filepath.Join(shared, "data/model-signing/*/*/model.sig"))
		more, _ := filepath.Glob(filepath.Join(shared, "data/model-signing/oms-spec-vectors/v1.0/*/*.json"))
		for _, p := range append(paths, more...) {
			if data, err := os.ReadFile(p); err == nil {
				seeds = append(seeds, data)
			}
		}
	}
	return seeds
}

// FuzzParseBundle feeds arbitrary bytes to the bundle and statement parsers
// and to Inspect: they must not panic, and every rejection must carry
// ReasonSignatureInvalid.
func FuzzParseBundle(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		pb, err := parseBundle(data)
		if err != nil {
			if r := modelrepo.ReasonOf(err); r != modelrepo.ReasonSignatureInvalid {
				t.Fatalf("bundle rejected with reason %s: %v", r, err)
			}
			return
		}
		if pb.method != MethodKey && pb.method != MethodCertificate {
			t.Fatalf("parsed bundle with method %q", pb.method)
		}
		if pb.method == MethodCertificate && len(pb.certs) == 0 {
			t.Fatal("certificate bundle without certificates")
		}
		if _, err := parseStatement(pb.payload); err != nil && modelrepo.ReasonOf(err) != modelrepo.ReasonSignatureInvalid {
			t.Fatalf("statement rejected with reason %s: %v", modelrepo.ReasonOf(err), err)
		}
		if _, err := Inspect(data); err != nil {
			t.Fatalf("Inspect failed on a bundle parseBundle accepted: %v", err)
		}
	})
}

// FuzzParseStatement fuzzes the in-toto statement parser directly, since
// reaching it through a bundle needs a valid base64 payload.
func FuzzParseStatement(f *testing.F) {
	dir := f.TempDir()
	must(f, os.WriteFile(filepath.Join(dir, "w"), []byte("weights"), 0o644))
	for _, shard := range []int64{0, 3} {
		_, payload, err := buildStatement(context.Background(), dir, HashSHA256, SignOptions{ShardSize: shard})
		must(f, err)
		f.Add(payload)
	}
	f.Add([]byte(`{"_type":"https://in-toto.io/Statement/v1","predicateType":"https://model_signing/Digests/v0.1","subject":[{"name":"a","digest":{"sha256":""}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := parseStatement(data)
		if err != nil {
			if r := modelrepo.ReasonOf(err); r != modelrepo.ReasonSignatureInvalid {
				t.Fatalf("rejected with reason %s: %v", r, err)
			}
			return
		}
		for _, r := range st.Resources {
			if err := checkResourceName(r.Name, st.Method); err != nil {
				t.Fatalf("accepted a bad resource name %q", r.Name)
			}
		}
	})
}
