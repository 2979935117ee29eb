package ocr

import (
	"context"
	"image"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/visionserve/visionserve/internal/metrics"
)

// fakeReader finds one slanted line per image and records the modes it
// was asked for.
type fakeReader struct{ modes []Mode }

func (f *fakeReader) ReadPage(_ context.Context, img image.Image, mode Mode) ([]Line, error) {
	f.modes = append(f.modes, mode)
	b := img.Bounds()
	box := Quad{{1, 2}, {float64(b.Dx() - 1), 4}, {float64(b.Dx() - 1), 9}, {1, 7}}
	return []Line{{Text: "slanted line", Confidence: 0.712345, Box: box,
		Words: []Word{{Text: "slanted", Confidence: 0.654321, Box: box}, {Text: "line", Confidence: 0.9, Box: box}}}}, nil
}

// A model that reads pages with a PageReader goes through the same service:
// review tiers, rounded confidences, mode resolution, timings and metrics,
// and its quadrilateral boxes are kept as they are.
func TestServicePageReader(t *testing.T) {
	fr := &fakeReader{}
	models, _ := NewStaticModels(
		&Model{Ref: ModelRef{Name: "ocr-eng", Version: "1"}, Languages: "eng", Engines: onePool{&fakeEngine{}}},
		&Model{Ref: ModelRef{Name: "ocr-photo", Version: "2"}, Languages: "eng", Pages: fr},
	)
	reg := prometheus.NewRegistry()
	svc := NewService(DefaultConfig(), models, direct{}, metrics.New(reg), nil)
	twoLines := pngOf(t, page(60, [2]int{5, 10}, [2]int{30, 10}))
	oneLine := pngOf(t, page(400, [2]int{10, 30}))

	res, err := svc.Recognize(context.Background(), Input{Data: twoLines}, Options{Model: "ocr-photo"})
	if err != nil {
		t.Fatal(err)
	}
	p := res.Pages[0]
	if res.Model != (ModelRef{Name: "ocr-photo", Version: "2"}) || p.Mode != "page" || p.Angle != 0 || len(p.Lines) != 1 {
		t.Fatalf("result %+v", res)
	}
	l := p.Lines[0]
	if l.Confidence != 0.7123 || l.Review != TierVerify || l.Words[0].Confidence != 0.6543 || l.Box[1] != (Point{59, 4}) {
		t.Errorf("line %+v", l)
	}
	if res.Text != "slanted line" || res.Confidence != 0.7123 || p.Confidence != 0.7123 {
		t.Errorf("text %q confidence %v page %v", res.Text, res.Confidence, p.Confidence)
	}
	for _, k := range []string{"decode", "preprocess", "recognize", "total"} {
		if _, ok := res.TimingMS[k]; !ok {
			t.Errorf("timing_ms lacks %s", k)
		}
	}
	var m dto.Metric
	if err := svc.metrics.Pages.WithLabelValues("ocr-photo", "2", "page").Write(&m); err != nil || m.GetCounter().GetValue() != 1 {
		t.Errorf("pages counted for ocr-photo: %v, %v", m.GetCounter().GetValue(), err)
	}

	// auto resolves to line for one line of text; explicit modes pass through.
	for _, tc := range []struct {
		data []byte
		mode Mode
		want Mode
	}{{oneLine, ModeAuto, ModeLine}, {oneLine, ModeWord, ModeWord}, {twoLines, ModeBlock, ModeBlock}} {
		fr.modes = nil
		if _, err := svc.Recognize(context.Background(), Input{Data: tc.data}, Options{Model: "ocr-photo", Mode: tc.mode}); err != nil {
			t.Fatal(err)
		}
		if len(fr.modes) != 1 || fr.modes[0] != tc.want {
			t.Errorf("mode %s: reader asked for %v, want %s", tc.mode, fr.modes, tc.want)
		}
	}
}
