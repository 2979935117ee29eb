package signing

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/visionserve/visionserve/internal/modelrepo"
	"github.com/visionserve/visionserve/internal/modelrepo/manifest"
)

// A manifest replaced after the signature's digests were computed, and
// before the verifier reads it, is refused: the manifest a package loads
// by (its runtime options, its files' SHA-256) is parsed from the bytes
// that were checked against the signature. Statements of SM3 digests (and
// shards) matter most: there the files are checked against the manifest's
// own SHA-256, so a manifest swapped together with a model file would
// otherwise admit the swapped file.
func TestManifestSwappedAfterSignatureIsRefused(t *testing.T) {
	ctx := context.Background()
	swaps := map[string]func(t *testing.T, dir string){
		"runtime changed": func(t *testing.T, dir string) {
			repack(t, dir, `{"file": "mobilefacenet.onnx", "sessions": 64}`)
		},
		"model file and manifest changed": func(t *testing.T, dir string) {
			must(t, os.WriteFile(filepath.Join(dir, "mobilefacenet.onnx"), []byte("\x08\x07\x12\x0cother weights"), 0o644))
			repack(t, dir, "")
		},
	}
	for _, alg := range testAlgs {
		for _, shard := range []int64{0, 16} {
			for name, swap := range swaps {
				t.Run(fmt.Sprintf("%s/shard %d/%s", alg, shard, name), func(t *testing.T) {
					key := newKeyOf(t, alg)
					dir := newPackage(t, packageFiles)
					sigPath := filepath.Join(dir, manifest.SignatureFileName)
					bundle, err := mustSigner(t, key).Sign(ctx, dir, SignOptions{SignaturePath: sigPath, ShardSize: shard})
					must(t, err)
					must(t, os.WriteFile(sigPath, bundle, 0o644))
					v := mustVerifier(t, Trust{Keys: []*ecdsa.PublicKey{pubOf(key)}})
					if _, err := v.VerifyPackage(ctx, dir); err != nil {
						t.Fatalf("the package as signed: %v", err)
					}
					v.afterSignature = func() { swap(t, dir) }
					got, err := v.VerifyPackage(ctx, dir)
					if err == nil {
						t.Fatalf("a manifest swapped after the signature check verified, runtime %s", got.Manifest.Runtime)
					}
					var e *modelrepo.Error
					if !errors.Is(err, modelrepo.ReasonDigestMismatch) || !errors.As(err, &e) || e.Path != manifest.FileName {
						t.Errorf("error %v, want digest_mismatch on %s", err, manifest.FileName)
					}
				})
			}
		}
	}
}

// repack rewrites dir's manifest from the files now in it.
func repack(t *testing.T, dir, runtime string) {
	t.Helper()
	var rt json.RawMessage
	if runtime != "" {
		rt = json.RawMessage(runtime)
	}
	if _, err := manifest.Pack(context.Background(), dir, "face-embed", 7, manifest.KindFaceEmbed, rt); err != nil {
		t.Fatal(err)
	}
}
