package face

import (
	"context"
	"fmt"
	"math"

	"github.com/visionserve/visionserve/internal/engine/onnx"
)

// RunFunc runs fn on a worker of the server's scheduler, so that warming
// a new version never runs more inference at once than the workers allow.
// Nil runs fn directly.
type RunFunc func(ctx context.Context, fn func(context.Context) error) error

func (r RunFunc) run(ctx context.Context, fn func(context.Context) error) error {
	if r == nil {
		return fn(ctx)
	}
	return r(ctx, fn)
}

// Warmup runs a detection of a synthetic image in every session of the
// pool, one after the other: it proves each session runs and returns the
// outputs the decoder expects (shapes and names, at two input sizes, since
// an image without a face is detected again with a border), and pays each
// session's first-run costs before a request would. Finding no face is
// fine: the image holds none the detector must find.
func (d *DetectorModel) Warmup(ctx context.Context, run RunFunc) error {
	img := warmupScene()
	return eachSession(ctx, d.pool, run, func(ctx context.Context, s *onnx.Session) error {
		det := *d.Detector
		det.m = s
		_, err := det.Detect(ctx, img)
		return err
	})
}

// Warmup embeds a synthetic face, already aligned, in every session of the
// pool: each must return a finite, non-zero vector of the model's length.
func (e *EmbedderModel) Warmup(ctx context.Context, run RunFunc) error {
	img := warmupFace()
	return eachSession(ctx, e.pool, run, func(ctx context.Context, s *onnx.Session) error {
		emb := *e.Embedder
		emb.m = s
		_, err := emb.Embed(ctx, img, arcFaceTemplate)
		return err
	})
}

// eachSession holds every session of pool (so each is used once) and runs
// fn with each on a worker.
func eachSession(ctx context.Context, pool *onnx.Pool, run RunFunc, fn func(context.Context, *onnx.Session) error) error {
	sessions := make([]*onnx.Session, 0, pool.Size())
	defer func() {
		for _, s := range sessions {
			pool.Release(s)
		}
	}()
	for range pool.Size() {
		s, err := pool.Acquire(ctx)
		if err != nil {
			return err
		}
		sessions = append(sessions, s)
	}
	for i, s := range sessions {
		if err := run.run(ctx, func(ctx context.Context) error { return fn(ctx, s) }); err != nil {
			return fmt.Errorf("warm-up, session %d: %w", i, err)
		}
	}
	return nil
}

// warmupScene is a 320x240 image of smooth shapes and texture: no face,
// but not a flat image either.
func warmupScene() *bgrImage {
	const w, h = 320, 240
	img := newBGR(w, h)
	for y := range h {
		for x := range w {
			v := 128 + 60*math.Sin(float64(x)/17) + 40*math.Cos(float64(y)/11)
			i := 3 * (y*w + x)
			img.pix[i] = clampByte(v)
			img.pix[i+1] = clampByte(255 - v)
			img.pix[i+2] = clampByte(float64((x*7 + y*3) % 256))
		}
	}
	return img
}

// warmupFace is a 112x112 skin-toned oval with darker eyes and mouth where
// the ArcFace template expects them, so alignment is the identity.
func warmupFace() *bgrImage {
	img := newBGR(AlignSize, AlignSize)
	dark := func(x, y float64, p Point, r float64) bool { return math.Hypot(x-p[0], y-p[1]) < r }
	for y := range AlignSize {
		for x := range AlignSize {
			fx, fy := float64(x), float64(y)
			b, g, r := 40.0, 50.0, 60.0 // background
			if math.Pow((fx-56)/44, 2)+math.Pow((fy-62)/54, 2) < 1 {
				b, g, r = 120, 150, 200 // skin
			}
			t := arcFaceTemplate
			if dark(fx, fy, t[0], 6) || dark(fx, fy, t[1], 6) || (fy > t[3][1]-3 && fy < t[3][1]+3 && fx > t[3][0] && fx < t[4][0]) {
				b, g, r = 30, 30, 40
			}
			i := 3 * (y*AlignSize + x)
			img.pix[i], img.pix[i+1], img.pix[i+2] = clampByte(b), clampByte(g), clampByte(r)
		}
	}
	return img
}
