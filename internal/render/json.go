package render

import (
	"context"
	"encoding/json"
	"io"

	"github.com/visionserve/visionserve/internal/ocr"
)

func init() { Register(Format{Name: "json", Ext: "json", Renderer: jsonRenderer{}}) }

// jsonRenderer writes the Result as the API's JSON (docs/api.md): one
// compact object and a newline.
type jsonRenderer struct{}

func (jsonRenderer) ContentType() string { return "application/json" }

func (jsonRenderer) Render(_ context.Context, w io.Writer, res *ocr.Result, _ Pages) error {
	return json.NewEncoder(w).Encode(res)
}
