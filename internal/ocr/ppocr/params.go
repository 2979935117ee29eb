package ppocr

import (
	"errors"
	"fmt"
)

// Params are the PP-OCR pipeline's settings. They are JSON-tagged so a model
// package manifest can carry them as runtime options; decode over
// DefaultParams so absent fields keep their defaults. The defaults are
// PaddleOCR's for the PP-OCRv3 detector, the v2.0 classifier and the v2.0
// CRNN recogniser (see shared/models/SOURCES.md).
type Params struct {
	Det DetParams `json:"det"`
	Cls ClsParams `json:"cls"`
	Rec RecParams `json:"rec"`
	// BGR feeds colour channels to the models as B, G, R: PaddleOCR reads
	// images with cv2 and never swaps them, so its models expect that.
	BGR bool `json:"bgr"`
	// TallRatio: a crop at least this many times taller than wide is
	// turned 90° counter-clockwise before recognition (vertical text).
	TallRatio float64 `json:"tall_ratio"`
	// SameLine: two boxes are on the same reading line when their tops
	// differ by less than this fraction of the smaller box's height.
	SameLine float64 `json:"same_line"`
	// HybridPad widens each line crop handed to the hybrid recogniser by
	// this fraction of the line height on every side. DB boxes hug the
	// x-height and clip ascenders and descenders, and Tesseract reads a
	// line better with a margin around it. The line box stays the
	// detected one.
	HybridPad float64 `json:"hybrid_pad"`
	// DropScore drops recognised lines whose confidence is below it, as
	// PaddleOCR's drop_score does; it also removes most false detections.
	DropScore float64 `json:"drop_score"`
}

// DetParams configure DB text detection.
type DetParams struct {
	// LimitSideLen and LimitType set the detector's input size: with "max"
	// an image whose longer side exceeds LimitSideLen is scaled down to it;
	// with "min" one whose shorter side is below it is scaled up. Each side
	// is then rounded to a multiple of 32 (at least 32).
	LimitSideLen int    `json:"limit_side_len"`
	LimitType    string `json:"limit_type"`
	// MaxSideLen caps the longer side after the limit step, so "min" on a
	// long strip cannot ask for an enormous input (PaddleOCR 3's
	// max_side_limit).
	MaxSideLen int `json:"max_side_len"`
	// Mean and Std normalise value/255 per model input channel.
	Mean [3]float64 `json:"mean"`
	Std  [3]float64 `json:"std"`
	// Thresh binarises the probability map.
	Thresh float64 `json:"thresh"`
	// BoxThresh drops a box whose mean probability is below it.
	BoxThresh float64 `json:"box_thresh"`
	// UnclipRatio grows each kernel box by area·ratio/perimeter.
	UnclipRatio float64 `json:"unclip_ratio"`
	// MaxCandidates caps the regions examined per image.
	MaxCandidates int `json:"max_candidates"`
	// MinSize drops regions whose rectangle's short side is below it (and
	// grown boxes below MinSize+2), in detector pixels.
	MinSize float64 `json:"min_size"`
}

// ClsParams configure the 0/180-degree line orientation classifier.
type ClsParams struct {
	Enabled bool `json:"enabled"`
	Height  int  `json:"height"`
	Width   int  `json:"width"`
	// Thresh: a crop is turned over only when the classifier says 180°
	// with at least this probability.
	Thresh float64 `json:"thresh"`
	Batch  int     `json:"batch"`
}

// RecParams configure CTC text recognition.
type RecParams struct {
	// Height is the model's fixed input height (32 for the v2.0 CRNN).
	Height int `json:"height"`
	// Width is the narrowest input; a batch is as wide as its widest
	// crop at Height.
	Width int `json:"width"`
	// MaxWidth caps a batch's width; wider crops are squeezed to it, as
	// the classifier squeezes to its width. It bounds the memory one
	// extreme aspect ratio can take (PaddleOCR has no cap).
	MaxWidth int `json:"max_width"`
	Batch    int `json:"batch"`
	// UseSpaceChar appends " " to the dictionary as PaddleOCR's
	// use_space_char does; the class count must then be len(dict)+2.
	UseSpaceChar bool `json:"use_space_char"`
}

// DefaultParams returns PaddleOCR's defaults for the shared models.
func DefaultParams() Params {
	return Params{
		Det: DetParams{
			LimitSideLen:  960,
			LimitType:     "max",
			MaxSideLen:    4000,
			Mean:          [3]float64{0.485, 0.456, 0.406},
			Std:           [3]float64{0.229, 0.224, 0.225},
			Thresh:        0.3,
			BoxThresh:     0.6,
			UnclipRatio:   1.5,
			MaxCandidates: 1000,
			MinSize:       3,
		},
		Cls:       ClsParams{Enabled: true, Height: 48, Width: 192, Thresh: 0.9, Batch: 6},
		Rec:       RecParams{Height: 32, Width: 320, MaxWidth: 4096, Batch: 6, UseSpaceChar: true},
		BGR:       true,
		TallRatio: 1.5,
		SameLine:  0.5,
		HybridPad: 0.25,
		DropScore: 0.5,
	}
}

// Validate reports parameters the pipeline cannot work with.
func (p Params) Validate() error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	d := p.Det
	check(d.LimitSideLen >= 32, "det.limit_side_len must be at least 32, got %d", d.LimitSideLen)
	check(d.LimitType == "max" || d.LimitType == "min", `det.limit_type must be "max" or "min", got %q`, d.LimitType)
	check(d.MaxSideLen >= d.LimitSideLen, "det.max_side_len (%d) must be at least det.limit_side_len (%d)", d.MaxSideLen, d.LimitSideLen)
	for i, s := range d.Std {
		check(s > 0, "det.std[%d] must be positive, got %g", i, s)
	}
	check(d.Thresh > 0 && d.Thresh < 1, "det.thresh must be in (0,1), got %g", d.Thresh)
	check(d.BoxThresh >= 0 && d.BoxThresh <= 1, "det.box_thresh must be in [0,1], got %g", d.BoxThresh)
	check(d.UnclipRatio >= 0, "det.unclip_ratio must not be negative, got %g", d.UnclipRatio)
	check(d.MaxCandidates >= 1, "det.max_candidates must be at least 1, got %d", d.MaxCandidates)
	check(d.MinSize >= 0, "det.min_size must not be negative, got %g", d.MinSize)
	if p.Cls.Enabled {
		check(p.Cls.Height >= 1 && p.Cls.Width >= 1, "cls.height and cls.width must be positive, got %dx%d", p.Cls.Height, p.Cls.Width)
		check(p.Cls.Thresh >= 0 && p.Cls.Thresh <= 1, "cls.thresh must be in [0,1], got %g", p.Cls.Thresh)
		check(p.Cls.Batch >= 1, "cls.batch must be at least 1, got %d", p.Cls.Batch)
	}
	check(p.Rec.Height >= 1 && p.Rec.Width >= 1, "rec.height and rec.width must be positive, got %dx%d", p.Rec.Height, p.Rec.Width)
	check(p.Rec.MaxWidth >= p.Rec.Width, "rec.max_width (%d) must be at least rec.width (%d)", p.Rec.MaxWidth, p.Rec.Width)
	check(p.Rec.Batch >= 1, "rec.batch must be at least 1, got %d", p.Rec.Batch)
	check(p.TallRatio > 0, "tall_ratio must be positive, got %g", p.TallRatio)
	check(p.SameLine >= 0, "same_line must not be negative, got %g", p.SameLine)
	check(p.HybridPad >= 0 && p.HybridPad <= 2, "hybrid_pad must be in [0,2], got %g", p.HybridPad)
	check(p.DropScore >= 0 && p.DropScore <= 1, "drop_score must be in [0,1], got %g", p.DropScore)
	return errors.Join(errs...)
}
