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
