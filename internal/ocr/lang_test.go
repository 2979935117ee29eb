package ocr

import (
	"context"
	"errors"
	"image"
	"testing"

	"github.com/visionserve/visionserve/internal/engine"
)

// readerFunc adapts a function to PageReader.
type readerFunc func(ctx context.Context, img image.Image, mode Mode) ([]Line, error)

func (f readerFunc) ReadPage(ctx context.Context, img image.Image, mode Mode) ([]Line, error) {
	return f(ctx, img, mode)
}

// zhModel stands in for the PP-OCRv4 package: a PageReader, no OSD.
func zhModel(name string) *Model {
	return &Model{Ref: ModelRef{Name: name, Version: "1"}, Languages: "chi_sim", Pages: readerFunc(func(context.Context, image.Image, Mode) ([]Line, error) {
		return []Line{{Text: "你好", Confidence: 0.9, Box: RectQuad(image.Rect(0, 0, 10, 10))}}, nil
	})}
}

func tessModel(name, lang string, script string) *Model {
	return &Model{Ref: ModelRef{Name: name, Version: "1"}, Languages: lang, Engines: onePool{&fakeEngine{orientation: engine.Orientation{Script: script}}}}
}

// lang= goes to the model ocr.languages names, else to the first model
// reading it; a request naming its model is not routed.
func TestLanguageRouting(t *testing.T) {
	eng, chiSim, zh := tessModel("ocr-eng", "eng", ""), tessModel("ocr-chi-sim", "chi_sim", ""), zhModel("ocr-zh")
	all, _ := NewStaticModels(eng, chiSim, zh)
	noZH, _ := NewStaticModels(eng, chiSim)
	unrouted := DefaultConfig()
	unrouted.Languages = nil
	img := pngOf(t, page(60, [2]int{5, 10}))
	for _, tc := range []struct {
		name   string
		models *StaticModels
		cfg    Config
		opt    Options
		want   string
		err    error
	}{
		{"routed", all, DefaultConfig(), Options{Lang: "chi_sim"}, "ocr-zh", nil},
		{"alias", all, DefaultConfig(), Options{Lang: "zh"}, "ocr-zh", nil},
		{"no route: first model reading it", all, unrouted, Options{Lang: "chi_sim"}, "ocr-chi-sim", nil},
		{"routed model not served", noZH, DefaultConfig(), Options{Lang: "chi_sim"}, "ocr-chi-sim", nil},
		{"named model", all, DefaultConfig(), Options{Model: "ocr-chi-sim", Lang: "chi_sim"}, "ocr-chi-sim", nil},
		{"unrouted language", all, DefaultConfig(), Options{Lang: "eng"}, "ocr-eng", nil},
		// A pinned version the routed model lacks is that model's error,
		// not a reason to read with another.
		{"routed, version missing", all, DefaultConfig(), Options{Lang: "chi_sim", Version: "9"}, "", ErrVersionNotFound},
		{"no model", noZH, DefaultConfig(), Options{Lang: "zh"}, "", ErrModelNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := NewService(tc.cfg, tc.models, direct{}, nil, nil).Recognize(context.Background(), Input{Data: img}, tc.opt)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil || res.Model.Name != tc.want {
				t.Fatalf("read by %+v (%v), want %s", res, err, tc.want)
			}
			if res.Script != "" || res.Lang != "" {
				t.Errorf("script %q lang %q reported without lang=auto", res.Script, res.Lang)
			}
		})
	}
}

// lang=auto asks the default model's OSD for the first page's script and
// reads with the language ocr.scripts maps it to; without a script or a
// mapping, or without OSD, the default model reads.
func TestLangAuto(t *testing.T) {
	img := pngOf(t, page(60, [2]int{5, 10}))
	for _, tc := range []struct {
		name               string
		script             string
		dflt               *Model
		want, wantLang     string
		wantScriptReported string
	}{
		{"Han", "Han", nil, "ocr-zh", "chi_sim", "Han"},
		{"Japanese reads as Chinese", "Japanese", nil, "ocr-zh", "chi_sim", "Japanese"},
		{"Latin", "Latin", nil, "ocr-eng", "eng", "Latin"},
		{"no script", "", nil, "ocr-eng", "", ""},
		{"unmapped script", "Cyrillic", nil, "ocr-eng", "", "Cyrillic"},
		{"default model without OSD", "", zhModel("ocr-zh2"), "ocr-zh2", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dflt := tc.dflt
			if dflt == nil {
				dflt = tessModel("ocr-eng", "eng", tc.script)
			}
			models, _ := NewStaticModels(dflt, zhModel("ocr-zh"))
			res, err := NewService(DefaultConfig(), models, direct{}, nil, nil).Recognize(context.Background(), Input{Data: img}, Options{Lang: LangAuto})
			if err != nil {
				t.Fatal(err)
			}
			if res.Model.Name != tc.want || res.Lang != tc.wantLang || res.Script != tc.wantScriptReported {
				t.Errorf("read by %s with lang %q, script %q; want %s, %q, %q", res.Model.Name, res.Lang, res.Script, tc.want, tc.wantLang, tc.wantScriptReported)
			}
		})
	}
	// A bad input is refused before any model runs.
	models, _ := NewStaticModels(tessModel("ocr-eng", "eng", "Han"))
	if _, err := NewService(DefaultConfig(), models, direct{}, nil, nil).Recognize(context.Background(), Input{Data: []byte("nope")}, Options{Lang: LangAuto}); err == nil {
		t.Error("lang=auto read garbage")
	}
}
