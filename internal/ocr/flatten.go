package ocr

import (
	"context"
	"fmt"
	"image"
	"math"

	"github.com/visionserve/visionserve/internal/ocr/dewarp"
)

// The dewarp stage. Before a page is read, dewarp.Plan decides whether it
// is a photographed sheet to flatten or a tilted scan to level; the page
// is read corrected, and every box found is mapped back through the
// correction's homography, so results stay in the coordinates of the page
// as submitted (a box read upright in the flattened page is a general
// quadrilateral in the photo).

// Dewarp describes the correction a page was read through (Page.Dewarp).
type Dewarp struct {
	// Kind is perspective (a photographed sheet, flattened) or deskew
	// (a scanned page, turned level).
	Kind string `json:"kind"`
	// Quad is the sheet's outline in the page as submitted: top-left,
	// top-right, bottom-right, bottom-left (perspective only).
	Quad *Quad `json:"quad,omitempty"`
	// Skew is the clockwise tilt of the text lines, in degrees, that was
	// undone (deskew only).
	Skew float64 `json:"skew,omitempty"`
	// Width and Height are the size of the corrected image that was read.
	Width  int `json:"width"`
	Height int `json:"height"`
	// Homography maps a point (x, y, 1) of the corrected image to the
	// page as submitted (row-major 3x3, divide by the third coordinate).
	Homography [3][3]float64 `json:"homography"`
	// Confidence in [0, 1] is that of the measurement behind the
	// correction: the sheet's outline or the tilt.
	Confidence float64 `json:"confidence"`
}

// ParseDewarp reads the dewarp option: auto flattens photographed sheets
// and levels tilted scans, on flattens any sheet outline found, off reads
// pages as they are; "" is the service's default.
func ParseDewarp(s string) (dewarp.Mode, error) {
	switch m := dewarp.Mode(s); m {
	case "", dewarp.Auto, dewarp.On, dewarp.Off:
		return m, nil
	}
	return "", fmt.Errorf("%w: dewarp=%q; use auto, on or off", ErrBadOption, s)
}

// flatten runs the dewarp stage on page i, gray being the page in grey:
// when the page needs a correction, it calls warp with it and returns it;
// otherwise it returns nil and the page is read as it is.
func (s *Service) flatten(ctx context.Context, model *Model, gray *image.Gray, i int, opt Options, warp func(*dewarp.Correction)) *dewarp.Correction {
	mode := opt.Dewarp
	if mode == "" {
		mode = s.cfg.Dewarp
	}
	if mode == dewarp.Off || mode == "" {
		return nil
	}
	_, span := s.stage(ctx, "ocr.dewarp", model, i)
	defer span.End()
	c, ok := dewarp.Plan(gray, mode)
	if !ok {
		return nil
	}
	warp(&c)
	s.log.DebugContext(ctx, "page corrected", "page", i, "kind", c.Kind, "confidence", c.Confidence(), "skew", c.Skew.Degrees)
	return &c
}

// unwarp maps the boxes of p, read through c, back to the page as
// submitted and records c on p. A nil c changes nothing.
func unwarp(p *Page, c *dewarp.Correction) {
	if c == nil {
		return
	}
	mapQuad := func(q *Quad) {
		for k, pt := range q {
			q[k] = roundPoint(Point(c.ToSource.Map(dewarp.Point(pt))))
		}
	}
	for i := range p.Lines {
		mapQuad(&p.Lines[i].Box)
		for k := range p.Lines[i].Words {
			mapQuad(&p.Lines[i].Words[k].Box)
		}
	}
	h := c.ToSource
	d := &Dewarp{Kind: string(c.Kind), Width: c.Width, Height: c.Height, Confidence: roundConfidence(c.Confidence()),
		Homography: [3][3]float64{{h[0], h[1], h[2]}, {h[3], h[4], h[5]}, {h[6], h[7], h[8]}}}
	switch c.Kind {
	case dewarp.Perspective:
		q := Quad{}
		for k, pt := range c.Page.Quad {
			q[k] = roundPoint(Point(pt))
		}
		d.Quad = &q
	case dewarp.Deskew:
		d.Skew = math.Round(c.Skew.Degrees*100) / 100
	}
	p.Dewarp = d
}

// roundPoint keeps a hundredth of a pixel: mapped corners are no more
// precise than that, and clients should not have to read
// 236.71963064304634.
func roundPoint(p Point) Point {
	return Point{math.Round(p[0]*100) / 100, math.Round(p[1]*100) / 100}
}
