package review

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"math"

	"github.com/visionserve/visionserve/internal/imageio"
)

// lineImage decodes page of the input (the same decoder, limits and
// orientation as OCR, so box is in the coordinates the result gave) and
// returns, as a grey PNG, the axis-aligned rectangle around box widened by
// a margin of a quarter of its height (at least 4 pixels) on every side,
// as line recognisers like; without a box, the whole page.
func lineImage(ctx context.Context, data []byte, declared imageio.Format, lim imageio.Limits, page int, box *[4][2]float64) (_ []byte, w, h int, err error) {
	doc, err := imageio.Open(data, declared, lim)
	if err != nil {
		return nil, 0, 0, err
	}
	if page >= len(doc.Pages) {
		return nil, 0, 0, invalid("page %d of a %d-page image", page, len(doc.Pages))
	}
	img, err := doc.Decode(ctx, page)
	if err != nil {
		return nil, 0, 0, err
	}
	gray := imageio.ToGray(img)
	var sub image.Image = gray
	if box != nil {
		r := cropRect(*box, gray.Bounds())
		if r.Empty() {
			return nil, 0, 0, invalid("the box lies outside the %dx%d page", gray.Bounds().Dx(), gray.Bounds().Dy())
		}
		sub = gray.SubImage(r)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, sub); err != nil {
		return nil, 0, 0, err
	}
	b := sub.Bounds()
	return buf.Bytes(), b.Dx(), b.Dy(), nil
}

// cropRect is the rectangle around q with its margin, clipped to bounds.
func cropRect(q [4][2]float64, bounds image.Rectangle) image.Rectangle {
	x0, y0 := math.Inf(1), math.Inf(1)
	x1, y1 := math.Inf(-1), math.Inf(-1)
	for _, p := range q {
		x0, x1 = math.Min(x0, p[0]), math.Max(x1, p[0])
		y0, y1 = math.Min(y0, p[1]), math.Max(y1, p[1])
	}
	m := math.Max(4, (y1-y0)/4)
	r := image.Rect(int(math.Floor(x0-m)), int(math.Floor(y0-m)), int(math.Ceil(x1+m)), int(math.Ceil(y1+m)))
	return r.Intersect(bounds)
}
