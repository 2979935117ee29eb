package render

import (
	"context"
	"io"

	"github.com/visionserve/visionserve/internal/ocr"
)

func init() { Register(Format{Name: "text", Ext: "txt", Renderer: textRenderer{}}) }

// textRenderer writes the result's text and a newline: lines joined by
// "\n", pages separated by a form feed.
type textRenderer struct{}

func (textRenderer) ContentType() string { return "text/plain; charset=utf-8" }

func (textRenderer) Render(_ context.Context, w io.Writer, res *ocr.Result, _ Pages) error {
	_, err := io.WriteString(w, res.Text+"\n")
	return err
}

// NewStream implements Streamer: the same text, page by page.
func (textRenderer) NewStream(w io.Writer, _ Document) (Stream, error) {
	return &textStream{w: newStickyWriter(w)}, nil
}

type textStream struct {
	w     *stickyWriter
	pages int
}

// Add implements Stream: a form feed before every page but the first, and
// the page's lines (none for a page without a result).
func (s *textStream) Add(_ context.Context, sp StreamPage) error {
	if s.pages > 0 {
		s.w.str("\f")
	}
	s.pages++
	if sp.Result != nil {
		s.w.str(ocr.PlainText([]ocr.Page{*sp.Result}))
	}
	return s.w.err
}

// Close implements Stream.
func (s *textStream) Close() error {
	s.w.str("\n")
	return s.w.flush()
}
