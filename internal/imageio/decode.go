package imageio

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"io"
	"sync/atomic"
	"time"

	"golang.org/x/image/bmp"
	"golang.org/x/image/webp"
)

// Limits bound what one request may make the server decode. Every field
// has a safe default (DefaultLimits); a zero field means "use the default".
type Limits struct {
	// MaxBytes is the largest encoded input accepted.
	MaxBytes int64 `yaml:"max_bytes" json:"max_bytes"`
	// MaxPixels is the largest page, in decoded pixels (width*height). It is
	// checked against the header before any pixel buffer is allocated, and
	// it bounds what decoding a page may allocate: 4 bytes per pixel of it,
	// plus 1 MB (a page whose decoder would need more is refused).
	MaxPixels int64 `yaml:"max_pixels" json:"max_pixels"`
	// MaxPages is the most pages (TIFF frames) one input may carry.
	MaxPages int `yaml:"max_pages" json:"max_pages"`
	// DecodeTimeout bounds the time spent decoding one page.
	DecodeTimeout time.Duration `yaml:"decode_timeout" json:"decode_timeout"`
}

// DefaultLimits fit an A4 page scanned at 600 dpi (35 Mpx) with room to
// spare, and keep one decoded page under about 200 MB even as RGBA.
func DefaultLimits() Limits {
	return Limits{
		MaxBytes:      32 << 20,
		MaxPixels:     50_000_000,
		MaxPages:      32,
		DecodeTimeout: 10 * time.Second,
	}
}

// WithDefaults fills zero fields from DefaultLimits.
func (l Limits) WithDefaults() Limits {
	d := DefaultLimits()
	if l.MaxBytes <= 0 {
		l.MaxBytes = d.MaxBytes
	}
	if l.MaxPixels <= 0 {
		l.MaxPixels = d.MaxPixels
	}
	if l.MaxPages <= 0 {
		l.MaxPages = d.MaxPages
	}
	if l.DecodeTimeout <= 0 {
		l.DecodeTimeout = d.DecodeTimeout
	}
	return l
}

// PageInfo describes one page from its header, before decoding.
type PageInfo struct {
	Width, Height int         // as displayed (orientation applied)
	Orientation   Orientation // EXIF/TIFF orientation, 1 when absent
}

// Document is an opened input: its format and the header of every page.
// Pages are decoded one at a time with Decode, so a multi-page input never
// holds more than one decoded page in memory.
type Document struct {
	Format Format
	Pages  []PageInfo

	data   []byte
	limits Limits
	tiff   []tiffPage
	bo     binary.ByteOrder
	png    *pngInfo
	// costs is, per page, what Open estimated its decode would allocate.
	costs []int64
}

// Open identifies the format of data and validates every page header
// against the limits. The bytes decide the format; declared, the format
// the client claimed if any, only words the error for bytes of no known
// format (undecodable as the claimed format rather than unsupported).
func Open(data []byte, declared Format, lim Limits) (*Document, error) {
	lim = lim.WithDefaults()
	if int64(len(data)) > lim.MaxBytes {
		return nil, errorf(ErrTooLarge, "input is %d bytes; the limit is %d", len(data), lim.MaxBytes)
	}
	if len(data) == 0 {
		return nil, errorf(ErrUndecodable, "empty body: send the image bytes")
	}
	f := Sniff(data)
	if f == "" {
		switch {
		case IsPDF(data):
			return nil, errorf(ErrUnsupported, "PDF is not an image; submit PDFs as a job or rasterise the pages")
		case declared != "":
			return nil, errorf(ErrUndecodable, "body is not a valid %s file (unrecognised signature)", declared)
		}
		return nil, errorf(ErrUnsupported, "unrecognised image format; supported: %s", supportedList())
	}
	d := &Document{Format: f, data: data, limits: lim}
	if err := d.readHeaders(); err != nil {
		return nil, err
	}
	return d, nil
}

// readHeaders fills d.Pages from the headers, checking each page against
// the limits: its pixels, and the bytes decoding it will allocate.
func (d *Document) readHeaders() error {
	switch d.Format {
	case TIFF:
		pages, bo, err := tiffPages(d.data, d.limits.MaxPages)
		if err != nil {
			return err
		}
		if len(pages) > d.limits.MaxPages {
			return errorf(ErrTooLarge, "more than %d pages; the limit is %d per request", d.limits.MaxPages, d.limits.MaxPages)
		}
		d.tiff, d.bo = pages, bo
		for i := range d.tiff {
			p := &d.tiff[i]
			if err := parseTIFFPage(d.data, bo, p); err != nil {
				return err
			}
			if err := d.addPage(p.w, p.h, Orientation(p.orientation), p.decodeBytes(), p.pixels()); err != nil {
				return err
			}
		}
		return nil
	case PNG:
		p, err := parsePNG(d.data)
		if err != nil {
			return err
		}
		d.png = p
		return d.addPage(p.w, p.h, orientationOf(PNG, d.data), p.decodeBytes(), p.pixels())
	case PNM:
		h, err := parsePNMHeader(d.data)
		if err != nil {
			return err
		}
		return d.addPage(h.w, h.h, Upright, h.decodeBytes(), h.pixels())
	}
	cfg, err := decodeConfig(d.Format, d.data)
	if err != nil {
		return wrapDecodeErr(d.Format, err)
	}
	// Working out the cost may read much of the stream (a lossless
	// WebP's codes): only for a page within the pixel limit.
	if err := d.checkSize(cfg.Width, cfg.Height); err != nil {
		return err
	}
	cost, kind := stdCost(d.Format, d.data, cfg, d.limits.decodeBudget())
	return d.addPage(cfg.Width, cfg.Height, orientationOf(d.Format, d.data), cost, kind)
}

// checkSize checks a page of w x h stored pixels against the pixel
// limit.
func (d *Document) checkSize(w, h int) error {
	if w <= 0 || h <= 0 {
		return errorf(ErrUndecodable, "%s: image has no pixels (%dx%d)", d.Format, w, h)
	}
	if px := int64(w) * int64(h); px > d.limits.MaxPixels {
		return errorf(ErrTooLarge, "page of %dx%d is %d pixels; the limit is %d", w, h, px, d.limits.MaxPixels)
	}
	return nil
}

// addPage appends the page of w x h stored pixels, which costs its decoder
// cost bytes, after checking it against the limits.
func (d *Document) addPage(w, h int, o Orientation, cost int64, kind pixelKind) error {
	if err := d.checkSize(w, h); err != nil {
		return err
	}
	px := int64(w) * int64(h)
	if !o.valid() {
		o = Upright
	}
	if cost += orientBytes(o, kind, px); cost > d.limits.decodeBudget() {
		return errorf(ErrTooLarge, "page of %dx%d needs %d MB to decode as %s, over the limit of %d MB (%d bytes per pixel of limits.max_pixels); send it smaller or as PNG",
			w, h, cost>>20, d.Format, d.limits.decodeBudget()>>20, bytesPerPixelBudget)
	}
	dw, dh := o.Size(w, h)
	d.Pages = append(d.Pages, PageInfo{Width: dw, Height: dh, Orientation: o})
	d.costs = append(d.costs, cost)
	return nil
}

// Decode decodes page i, applies its orientation and returns it upright as
// displayed. It gives up with ErrDecodeTimeout after Limits.DecodeTimeout,
// or with ctx's error when ctx ends first.
func (d *Document) Decode(ctx context.Context, i int) (image.Image, error) {
	if i < 0 || i >= len(d.Pages) {
		return nil, fmt.Errorf("imageio: page %d out of range [0,%d)", i, len(d.Pages))
	}
	dctx, cancel := context.WithTimeoutCause(ctx, d.limits.DecodeTimeout, ErrDecodeTimeout)
	defer cancel()
	var img image.Image
	// The readers notice a context ending asynchronously; one that has
	// already ended must not start a decode at all.
	err := dctx.Err()
	switch {
	case err != nil:
	case d.Format == TIFF:
		img, err = decodeTIFF(dctx, d.data, d.bo, &d.tiff[i])
	case d.Format == PNG:
		img, err = decodePNG(dctx, d.png)
	default:
		img, err = decode(dctx, d.Format, d.data)
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if dctx.Err() != nil {
			return nil, errorf(ErrDecodeTimeout, "page %d took longer than %v to decode", i, d.limits.DecodeTimeout)
		}
		return nil, wrapDecodeErr(d.Format, err)
	}
	p := d.Pages[i]
	w, h := p.Orientation.Size(p.Width, p.Height) // stored size
	if g, ok := img.(*image.Paletted); ok && d.Format == GIF {
		img = gifCanvas(g, w, h)
	}
	if b := img.Bounds(); b.Dx() != w || b.Dy() != h {
		// The header promised one size and the data gave another: refuse
		// rather than hand a pipeline a page that contradicts its metadata.
		return nil, errorf(ErrUndecodable, "%s: decoded size %dx%d differs from the header's %dx%d", d.Format, b.Dx(), b.Dy(), w, h)
	}
	return p.Orientation.upright(img), nil
}

func decodeConfig(f Format, data []byte) (image.Config, error) {
	r := bytes.NewReader(data)
	switch f {
	case JPEG:
		return jpeg.DecodeConfig(r)
	case GIF:
		return gif.DecodeConfig(r)
	case BMP:
		return bmp.DecodeConfig(r)
	case WebP:
		return webp.DecodeConfig(r)
	}
	return image.Config{}, errorf(ErrUnsupported, "format %s", f)
}

func decode(ctx context.Context, f Format, data []byte) (image.Image, error) {
	r, stop := newCtxReader(ctx, bytes.NewReader(data))
	defer stop()
	switch f {
	case JPEG:
		return jpeg.Decode(r)
	case GIF:
		return gif.Decode(r) // the first frame: an animation is not a document
	case BMP:
		return bmp.Decode(r)
	case WebP:
		return webp.Decode(r)
	case PNM:
		return decodePNM(ctx, data)
	}
	return nil, errorf(ErrUnsupported, "format %s", f)
}

func orientationOf(f Format, data []byte) Orientation {
	switch f {
	case JPEG:
		return Orientation(jpegOrientation(data))
	case PNG:
		return Orientation(pngOrientation(data))
	case WebP:
		return Orientation(webpOrientation(data))
	}
	return Upright
}

// wrapDecodeErr turns a decoder's error into an input error. Errors already
// classified pass through; an unsupported feature of a known format (for
// instance a TIFF compression scheme) is ErrUnsupported, anything else is
// ErrUndecodable.
func wrapDecodeErr(f Format, err error) error {
	var ie *Error
	if errors.As(err, &ie) {
		return err
	}
	var jpegUnsupported jpeg.UnsupportedError
	switch {
	case errors.As(err, &jpegUnsupported), errors.Is(err, bmp.ErrUnsupported):
		return errorf(ErrUnsupported, "%s: %v", f, err)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return errorf(ErrUndecodable, "%s: data truncated", f)
	}
	return errorf(ErrUndecodable, "%s: %v", f, err)
}

// ctxReader fails reads once ctx is done, which is how a decoder that
// knows nothing of contexts is bounded in time. The flag is set by
// context.AfterFunc so each Read costs one atomic load.
type ctxReader struct {
	done atomic.Bool
	err  func() error
	r    io.Reader
}

func newCtxReader(ctx context.Context, r io.Reader) (*ctxReader, func() bool) {
	c := &ctxReader{r: r, err: ctx.Err}
	stop := context.AfterFunc(ctx, func() { c.done.Store(true) })
	return c, stop
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if c.done.Load() {
		return 0, c.err()
	}
	return c.r.Read(p)
}

// gifCanvas places a first frame smaller than the logical screen on a
// screen-sized canvas, as a viewer would show it, with the frame's palette
// (1 byte a pixel): outside the frame the canvas is white, an opaque white
// added to the palette when it has room, else the palette's lightest entry.
func gifCanvas(frame *image.Paletted, w, h int) image.Image {
	screen := image.Rect(0, 0, w, h)
	if frame.Rect == screen {
		return frame
	}
	pal := frame.Palette
	bg := -1
	for i, c := range pal {
		if r, g, b, a := c.RGBA(); r&g&b&a == 0xffff {
			bg = i
			break
		}
	}
	if bg < 0 && len(pal) < 256 {
		pal = append(pal[:len(pal):len(pal)], color.White)
		bg = len(pal) - 1
	}
	if bg < 0 {
		var light uint8
		for i, c := range pal {
			if y := grayOverWhite(c); bg < 0 || y > light {
				bg, light = i, y
			}
		}
	}
	canvas := image.NewPaletted(screen, pal)
	for i := range canvas.Pix {
		canvas.Pix[i] = uint8(bg)
	}
	r := frame.Rect.Intersect(screen)
	for y := r.Min.Y; y < r.Max.Y; y++ {
		copy(canvas.Pix[canvas.PixOffset(r.Min.X, y):canvas.PixOffset(r.Max.X, y)], frame.Pix[frame.PixOffset(r.Min.X, y):])
	}
	return canvas
}
