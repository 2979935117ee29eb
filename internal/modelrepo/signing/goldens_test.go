package signing

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/visionserve/visionserve/internal/testenv"
)

// TestReferenceGoldens builds statements for the models the reference
// implementation's golden payloads describe and compares resources (names,
// order, algorithm, digest) and the root digest. It is the ground truth for
// our serializer: files mode, 1 GB shards and 8-byte shards.
func TestReferenceGoldens(t *testing.T) {
	base := testenv.Shared(t, "data/model-signing/model-transparency-goldens")
	models := map[string]string{
		"deep_model_folder":            "deep_model",
		"empty_model_file":             "empty_file_model",
		"empty_model_folder":           "", // an empty directory made below
		"model_folder_with_empty_file": "empty_file_inside_model",
		"sample_model_file":            "file_model",
		"sample_model_folder":          "sample_model",
		// symlink_model_folder is left out: its link points outside the
		// model, which this package refuses on purpose.
	}
	goldens, err := filepath.Glob(filepath.Join(base, "signing", "TestPayload", "*"))
	if err != nil || len(goldens) == 0 {
		t.Fatalf("no golden payloads (%v)", err)
	}
	checked := 0
	for _, g := range goldens {
		name := filepath.Base(g)
		var shard int64
		switch {
		case strings.HasSuffix(name, "_small_shards"):
			name, shard = strings.TrimSuffix(name, "_small_shards"), 8
		case strings.HasSuffix(name, "_shard"):
			name, shard = strings.TrimSuffix(name, "_shard"), 1_000_000_000
		}
		modelDir, ok := models[name]
		if !ok {
			continue
		}
		t.Run(filepath.Base(g), func(t *testing.T) {
			var golden struct {
				Subject []struct {
					Digest map[string]string `json:"digest"`
				} `json:"subject"`
				Predicate struct {
					Serialization struct {
						Method    string  `json:"method"`
						HashType  string  `json:"hash_type"`
						ShardSize float64 `json:"shard_size"`
					} `json:"serialization"`
					Resources []Resource `json:"resources"`
				} `json:"predicate"`
			}
			data, err := os.ReadFile(g)
			must(t, err)
			must(t, json.Unmarshal(data, &golden))

			model := filepath.Join(base, "models", modelDir)
			if modelDir == "" {
				model = t.TempDir()
			}
			st, _, err := buildStatement(context.Background(), model, HashSHA256, SignOptions{ShardSize: shard})
			must(t, err)
			if st.Method != golden.Predicate.Serialization.Method || st.HashType != golden.Predicate.Serialization.HashType ||
				float64(st.ShardSize) != golden.Predicate.Serialization.ShardSize {
				t.Errorf("serialization %s/%s/%d, golden %+v", st.Method, st.HashType, st.ShardSize, golden.Predicate.Serialization)
			}
			if !slices.Equal(st.Resources, golden.Predicate.Resources) {
				t.Errorf("resources differ:\n got  %v\n want %v", st.Resources, golden.Predicate.Resources)
			}
			if st.RootDigest != golden.Subject[0].Digest["sha256"] {
				t.Errorf("root digest %s, want %s", st.RootDigest, golden.Subject[0].Digest["sha256"])
			}
			// And the statement we would sign parses as a valid one.
			if _, err := parseStatement(mustPayload(t, model, shard)); err != nil {
				t.Errorf("our payload does not parse: %v", err)
			}
		})
		checked++
	}
	if checked != 3*len(models) {
		t.Errorf("checked %d goldens, want %d", checked, 3*len(models))
	}
}

func mustPayload(t *testing.T, model string, shard int64) []byte {
	t.Helper()
	_, payload, err := buildStatement(context.Background(), model, HashSHA256, SignOptions{ShardSize: shard})
	must(t, err)
	return payload
}

// TestComponentOrder pins the reference's ordering, which differs from
// byte order when a name continues with a character below '/'.
func TestComponentOrder(t *testing.T) {
	names := []string{"a.b", "a/b", "a-b", "a/a", "b", "a"}
	slices.SortFunc(names, func(a, b string) int { return componentCompare(a, b, false) })
	if want := []string{"a", "a/a", "a/b", "a-b", "a.b", "b"}; !slices.Equal(names, want) {
		t.Errorf("order %v, want %v", names, want)
	}
	shards := []string{"f:16:22", "f:8:16", "f:0:8", "e:0:1"}
	slices.SortFunc(shards, func(a, b string) int { return componentCompare(a, b, true) })
	if want := []string{"e:0:1", "f:0:8", "f:8:16", "f:16:22"}; !slices.Equal(shards, want) {
		t.Errorf("shard order %v, want %v", shards, want)
	}
}
