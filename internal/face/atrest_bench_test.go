package face_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/visionserve/visionserve/internal/face"
	"github.com/visionserve/visionserve/internal/gallery"
	"github.com/visionserve/visionserve/internal/keys"
	"github.com/visionserve/visionserve/internal/keys/keytest"
	"github.com/visionserve/visionserve/internal/sched"
	"github.com/visionserve/visionserve/internal/testenv"
)

// BenchmarkEnrollIdentifyAtRest measures enroll and identify end to end
// (decode, detect, align, embed with the real models; then the gallery)
// on an embedded store in clear and on an encrypted one, side by side in
// one run: the -ratio metrics are encrypted over clear. The analysis
// cache is off, so every request runs the models.
func BenchmarkEnrollIdentifyAtRest(b *testing.B) {
	m := realModels(b)
	ctx := context.Background()
	dir := testenv.Shared(b, "data/face/face_recognition-examples/knn_examples")
	read := func(rel string) face.Input {
		data, err := os.ReadFile(filepath.Join(dir, rel))
		if err != nil {
			b.Fatal(err)
		}
		return face.Input{Data: data}
	}
	enrollImg, queryImg := read("train/obama/obama.jpg"), read("test/obama_and_biden.jpg")
	for _, alg := range keys.Algorithms {
		b.Run(string(alg), func(b *testing.B) {
			var svcs [2]*face.Service
			for i, enc := range []keys.Config{{}, keytest.Config(b, alg)} {
				store, err := gallery.OpenBolt(filepath.Join(b.TempDir(), "g.db"), time.Second, enc)
				if err != nil {
					b.Fatal(err)
				}
				gm, err := gallery.Open(ctx, store, gallery.DefaultConfig(), nil, nil)
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { gm.Close() })
				cfg := face.DefaultConfig()
				cfg.CacheEntries = 0
				if svcs[i], err = face.NewService(cfg, m, gm, sched.New(2, 8, nil), nil, nil); err != nil {
					b.Fatal(err)
				}
				if _, _, err := svcs[i].CreateGallery(ctx, gallery.Ref{Name: "people"}); err != nil {
					b.Fatal(err)
				}
			}
			var n [2]int
			enroll := func(i int) func() {
				return func() {
					n[i]++
					if _, err := svcs[i].Enroll(ctx, gallery.Ref{Name: "people"}, fmt.Sprintf("s%05d", n[i]), enrollImg); err != nil {
						b.Fatal(err)
					}
				}
			}
			identify := func(i int) func() {
				return func() {
					if _, err := svcs[i].Identify(ctx, gallery.Ref{Name: "people"}, queryImg, face.IdentifyOptions{TopK: 1}); err != nil {
						b.Fatal(err)
					}
				}
			}
			en, id := &keytest.AB{Clear: enroll(0), Sealed: enroll(1)}, &keytest.AB{Clear: identify(0), Sealed: identify(1)}
			for b.Loop() {
				en.Step()
				id.Step()
			}
			en.Report(b, "enroll")
			id.Report(b, "identify")
		})
	}
}
