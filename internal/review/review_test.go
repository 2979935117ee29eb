package review

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/visionserve/visionserve/internal/gallery/pgtest"
	"github.com/visionserve/visionserve/internal/imageio"
	"github.com/visionserve/visionserve/internal/keys"
	"github.com/visionserve/visionserve/internal/ocreval"
	"github.com/visionserve/visionserve/internal/review/reviewtest"
)

// page is a 200x100 white PNG with a black bar at x 50-150, y 40-60: the
// "line" a box names.
func page(t testing.TB) []byte {
	img := image.NewGray(image.Rect(0, 0, 200, 100))
	for i := range img.Pix {
		img.Pix[i] = 255
	}
	for y := 40; y < 60; y++ {
		for x := 50; x < 150; x++ {
			img.SetGray(x, y, color.Gray{})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func box(x0, y0, x1, y1 float64) *[4][2]float64 {
	return &[4][2]float64{{x0, y0}, {x1, y0}, {x1, y1}, {x0, y1}}
}

func input(tenant, corrected string, data []byte) Input {
	return Input{
		Review: Review{Tenant: tenant, Author: "key:reviewer", Model: Model{Name: "ocr-eng", Version: "1"},
			Text: "tbe line", Confidence: 0.42, Tier: "review", Corrected: corrected,
			Source: Source{Name: "scan.png", Box: box(50, 40, 150, 60)}},
		Data: data,
	}
}

// stores runs fn against each store: bbolt always, PostgreSQL when its
// binaries are installed (pgtest skips, or fails under CI, otherwise).
func stores(t *testing.T, fn func(t *testing.T, open func() Store)) {
	t.Run("bolt", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "reviews.db")
		fn(t, func() Store {
			s, err := OpenBolt(path, time.Second, keys.Config{})
			if err != nil {
				t.Fatal(err)
			}
			return s
		})
	})
	t.Run("postgres", func(t *testing.T) {
		if testing.Short() {
			t.Skip("starts PostgreSQL")
		}
		srv := pgtest.Start(t)
		fn(t, func() Store {
			s, err := OpenPostgres(context.Background(), srv.DSN, 4, keys.Config{})
			if err != nil {
				t.Fatal(err)
			}
			return s
		})
	})
}

// The store's verbs on both stores: create, get with the image, page
// through a listing, export everything, delete; tenants never meet; the
// per-tenant bound holds; reviews survive reopening.
func TestStores(t *testing.T) {
	stores(t, func(t *testing.T, open func() Store) {
		ctx := context.Background()
		st := open()
		svc := NewService(st, Config{MaxPerTenant: 5}, nil, nil)
		data := page(t)
		var ids []string
		for i := range 5 {
			r, err := svc.Create(ctx, input("acme", fmt.Sprintf("the line %d", i), data))
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, r.ID)
		}
		if _, err := svc.Create(ctx, input("acme", "one too many", data)); !errors.Is(err, ErrLimit) {
			t.Fatalf("sixth review of a tenant bounded at 5: %v", err)
		}
		other, err := svc.Create(ctx, input("", "the default tenant's", data))
		if err != nil {
			t.Fatalf("another tenant has its own bound: %v", err)
		}
		if _, err := svc.Get(ctx, "acme", other.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("another tenant's review: %v", err)
		}
		if err := svc.Delete(ctx, "acme", other.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("deleting another tenant's review: %v", err)
		}

		got, err := svc.Get(ctx, "acme", ids[2])
		if err != nil || got.Corrected != "the line 2" || got.Text != "tbe line" || got.Confidence != 0.42 || got.Tier != "review" ||
			got.Model != (Model{"ocr-eng", "1"}) || got.Author != "key:reviewer" || got.Source.Box == nil || got.Source.Name != "scan.png" {
			t.Fatalf("get: %+v %v", got, err)
		}
		if img, err := png.Decode(bytes.NewReader(got.Image)); err != nil || img.Bounds().Dx() != got.Width || img.Bounds().Dy() != got.Height {
			t.Fatalf("image: %v", err)
		}

		// Pages of two, in creation order.
		var listed []string
		cursor := ""
		for {
			page, next, err := svc.List(ctx, "acme", Page{After: cursor, Limit: 2})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range page {
				if r.Image != nil {
					t.Fatal("a listing carries images")
				}
				listed = append(listed, r.ID)
			}
			if next == "" {
				break
			}
			cursor = next
		}
		if strings.Join(listed, ",") != strings.Join(ids, ",") {
			t.Fatalf("listed %v, created %v", listed, ids)
		}

		if err := svc.Delete(ctx, "acme", ids[0]); err != nil {
			t.Fatal(err)
		}
		if err := svc.Delete(ctx, "acme", ids[0]); !errors.Is(err, ErrNotFound) {
			t.Fatalf("second delete: %v", err)
		}
		if _, err := svc.Create(ctx, input("acme", "room again", data)); err != nil {
			t.Fatalf("a delete gives its share back: %v", err)
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}

		st = open()
		defer st.Close()
		svc = NewService(st, Config{}, nil, nil)
		n := 0
		if err := st.Each(ctx, "acme", func(r Review) error {
			if len(r.Image) == 0 || r.Tenant != "acme" {
				t.Errorf("each: %+v", r)
			}
			n++
			return nil
		}); err != nil || n != 5 {
			t.Fatalf("after reopening: %d reviews, %v", n, err)
		}
		if _, err := svc.Get(ctx, "acme", ids[1]); err != nil {
			t.Fatalf("after reopening: %v", err)
		}
	})
}

// Replicas starting together on a new database migrate it once.
func TestPostgresConcurrentMigration(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	srv := pgtest.Start(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			s, err := OpenPostgres(context.Background(), srv.DSN, 2, keys.Config{})
			if err == nil {
				s.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	s, err := OpenPostgres(context.Background(), srv.DSN, 2, keys.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.pool.Exec(context.Background(), `UPDATE visionserve_reviews_schema SET version = 99`); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenPostgres(context.Background(), srv.DSN, 2, keys.Config{}); err == nil || !strings.Contains(err.Error(), "schema version 99") {
		t.Fatalf("a newer schema: %v", err)
	}
}

// The line image is the box plus a margin, cut from the page as OCR
// decodes it; without a box, the whole image.
func TestLineImage(t *testing.T) {
	ctx := context.Background()
	data := page(t)
	lim := imageio.DefaultLimits()
	for _, tc := range []struct {
		name string
		box  *[4][2]float64
		w, h int
		err  error
	}{
		{"box plus a quarter of its height", box(50, 40, 150, 60), 100 + 10, 20 + 10, nil},
		{"small box: 4 pixels", box(50, 40, 150, 44), 100 + 8, 4 + 8, nil},
		{"clipped at the page", box(-20, 90, 220, 110), 200, 100 - 85, nil},
		{"no box: the whole image", nil, 200, 100, nil},
		{"outside the page", box(500, 500, 600, 520), 0, 0, ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, w, h, err := lineImage(ctx, data, "", lim, 0, tc.box)
			if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
				t.Fatalf("err %v, want %v", err, tc.err)
			}
			if err != nil {
				return
			}
			img, err := png.Decode(bytes.NewReader(out))
			if err != nil || w != tc.w || h != tc.h || img.Bounds().Dx() != w || img.Bounds().Dy() != h {
				t.Fatalf("%dx%d (png %v), want %dx%d", w, h, err, tc.w, tc.h)
			}
		})
	}
	if _, _, _, err := lineImage(ctx, data, "", lim, 1, nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("page 1 of a one-page image: %v", err)
	}
	if _, _, _, err := lineImage(ctx, []byte("not an image"), "", lim, 0, nil); !errors.Is(err, imageio.ErrUnsupported) {
		t.Errorf("garbage: %v", err)
	}
}

// Bad fields are refused before anything is decoded or stored.
func TestValidation(t *testing.T) {
	svc := NewService(nil, Config{}, nil, nil) // a nil store: nothing may reach it
	for name, mod := range map[string]func(*Input){
		"line break in the correction": func(in *Input) { in.Corrected = "two\nlines" },
		"long correction":              func(in *Input) { in.Corrected = strings.Repeat("x", MaxText+1) },
		"not UTF-8":                    func(in *Input) { in.Text = "\xff" },
		"confidence above 1":           func(in *Input) { in.Confidence = 1.5 },
		"confidence NaN":               func(in *Input) { in.Confidence = math.NaN() },
		"unknown tier":                 func(in *Input) { in.Tier = "maybe" },
		"negative page":                func(in *Input) { in.Source.Page = -1 },
		"infinite box":                 func(in *Input) { in.Source.Box[1][0] = math.Inf(1) },
		"tenant with NUL":              func(in *Input) { in.Tenant = "a\x00b" },
	} {
		t.Run(name, func(t *testing.T) {
			in := input("", "right", page(t))
			mod(&in)
			if _, err := svc.Create(context.Background(), in); !errors.Is(err, ErrInvalid) {
				t.Fatalf("err %v", err)
			}
		})
	}
	for _, id := range []string{"", "rv_", "../../etc/passwd", "rv_0123456789abcdef0123456X", "RV_0123456789abcdef01234567"} {
		if _, err := svc.Get(context.Background(), "", id); !errors.Is(err, ErrNotFound) {
			t.Errorf("id %q: %v", id, err)
		}
	}
	if !ValidID(newID(time.Now())) {
		t.Error("a new id is not valid")
	}
}

// Must show: the export is the layout `visionserve calibrate --data`
// reads, as tar and as zip, and can be limited to one model.
func TestExport(t *testing.T) {
	ctx := context.Background()
	st, err := OpenBolt(filepath.Join(t.TempDir(), "r.db"), time.Second, keys.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	svc := NewService(st, Config{}, nil, nil)
	data := page(t)
	for _, c := range []string{"first line", "second line"} {
		if _, err := svc.Create(ctx, input("t", c, data)); err != nil {
			t.Fatal(err)
		}
	}
	other := input("t", "another model's line", data)
	other.Model.Name = "ocr-deu"
	if _, err := svc.Create(ctx, other); err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"tar", "zip"} {
		t.Run(format, func(t *testing.T) {
			var buf bytes.Buffer
			n, err := svc.Export(ctx, "t", format, ExportFilter{Model: "ocr-eng"}, &buf)
			if err != nil || n != 2 {
				t.Fatalf("exported %d: %v", n, err)
			}
			dir := t.TempDir()
			reviewtest.Unpack(t, format, buf.Bytes(), dir)
			samples, err := ocreval.LoadLines(dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(samples) != 2 || samples[0].Truth != "first line" || samples[1].Truth != "second line" {
				t.Fatalf("samples %+v", samples)
			}
			if _, err := os.Stat(strings.TrimSuffix(samples[0].Image, ".png") + ".json"); err != nil {
				t.Error(err)
			}
		})
	}
	var buf bytes.Buffer
	if n, err := svc.Export(ctx, "t", "", ExportFilter{}, &buf); err != nil || n != 3 {
		t.Fatalf("unfiltered: %d %v", n, err)
	}
	if n, err := svc.Export(ctx, "nobody", "", ExportFilter{}, io.Discard); err != nil || n != 0 {
		t.Fatalf("a tenant without reviews: %d %v", n, err)
	}
	if _, err := svc.Export(ctx, "t", "rar", ExportFilter{}, io.Discard); !errors.Is(err, ErrInvalid) {
		t.Fatalf("format rar: %v", err)
	}
}

// Each hands out every review in id order across several read batches.
func TestEachAcrossBatches(t *testing.T) {
	stores(t, func(t *testing.T, open func() Store) {
		ctx := context.Background()
		st := open()
		defer st.Close()
		svc := NewService(st, Config{}, nil, nil)
		data := page(t)
		n := 2*eachBatch + 3
		for i := range n {
			if _, err := svc.Create(ctx, input("t", fmt.Sprint(i), data)); err != nil {
				t.Fatal(err)
			}
		}
		var got []string
		if err := st.Each(ctx, "t", func(r Review) error {
			got = append(got, r.Corrected)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if len(got) != n || got[0] != "0" || got[eachBatch] != fmt.Sprint(eachBatch) || got[n-1] != fmt.Sprint(n-1) {
			t.Fatalf("%d reviews: %v", len(got), got)
		}
	})
}
