package render

import (
	"context"
	"fmt"
	"io"
	"mime"
	"slices"
	"strings"
	"sync"

	"github.com/visionserve/visionserve/internal/ocr"
	"github.com/visionserve/visionserve/internal/render/pdf"
)

// Renderer writes OCR results in one format.
type Renderer interface {
	// ContentType is the media type of what Render writes.
	ContentType() string
	// Render writes res to w. A format that shows the page images reads
	// them from pages, in order, one at a time (pages.Page(ctx, i) for
	// res.Pages[i]); the others never call it, and pages may be nil for
	// them.
	Render(ctx context.Context, w io.Writer, res *ocr.Result, pages Pages) error
}

// Pages gives the page images of a result.
type Pages interface {
	// Page returns the image of res.Pages[i]. The caller drops it before
	// asking for the next, so an implementation may decode (or rasterise)
	// each page on demand and hold only one at a time.
	Page(ctx context.Context, i int) (Image, error)
}

// PagesFunc adapts a function to Pages.
type PagesFunc func(ctx context.Context, i int) (Image, error)

// Page implements Pages.
func (f PagesFunc) Page(ctx context.Context, i int) (Image, error) { return f(ctx, i) }

// Image is one page image as a renderer receives it: the page as
// displayed, in the coordinates of the result's boxes, with its resolution
// (0: unknown, renderers assume DefaultDPI) and, for JPEG and PNG inputs
// that display as stored, its own encoding.
type Image = pdf.Image

// DefaultDPI is the resolution assumed for images that do not state one.
const DefaultDPI = pdf.DefaultDPI

// Format is a registered output format.
type Format struct {
	// Name is what format= (HTTP, gRPC) and --format (CLI) take.
	Name string
	// Ext is the usual file extension, without the dot.
	Ext string
	// Images is true for the formats that show the page images (their
	// renderer reads Pages), so a caller can make sure it has them before
	// the document starts.
	Images bool
	Renderer
}

var (
	mu      sync.RWMutex
	formats = map[string]Format{}
)

// Register adds a format to the registry, usually from the init function
// of the file that implements it. It panics on an empty or taken name, as
// a programming error.
func Register(f Format) {
	mu.Lock()
	defer mu.Unlock()
	if f.Name == "" || f.Renderer == nil {
		panic("render: Register needs a name and a renderer")
	}
	if _, dup := formats[f.Name]; dup {
		panic("render: format " + f.Name + " registered twice")
	}
	formats[f.Name] = f
}

// Default is the format of a request that names none.
const Default = "json"

// Lookup returns the format called name ("" is Default). An unknown name
// is an ocr.ErrBadOption that lists the known ones, so every transport
// answers it as it answers any other bad option.
func Lookup(name string) (Format, error) {
	if name == "" {
		name = Default
	}
	mu.RLock()
	f, ok := formats[name]
	mu.RUnlock()
	if !ok {
		return Format{}, fmt.Errorf("%w: format=%q; use %s", ocr.ErrBadOption, name, list(Names()))
	}
	return f, nil
}

// Names returns the registered format names, sorted.
func Names() []string {
	mu.RLock()
	defer mu.RUnlock()
	out := make([]string, 0, len(formats))
	for n := range formats {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// ForAccept picks the format an Accept header asks for: the first media
// range that is the content type of exactly one format, or of several one
// of which is named after its subtype (application/pdf: pdf, not pdfa).
// ok is false when none is (the caller then uses Default). Quality values
// are not weighed.
func ForAccept(accept string) (f Format, ok bool) {
	for _, r := range strings.Split(accept, ",") {
		mt, _, err := mime.ParseMediaType(strings.TrimSpace(r))
		if err != nil {
			continue
		}
		var found []Format
		mu.RLock()
		for _, f := range formats {
			if ct, _, _ := mime.ParseMediaType(f.ContentType()); ct == mt {
				found = append(found, f)
			}
		}
		mu.RUnlock()
		if len(found) == 1 {
			return found[0], true
		}
		_, sub, _ := strings.Cut(mt, "/")
		for _, f := range found {
			if f.Name == sub {
				return f, true
			}
		}
	}
	return Format{}, false
}

func list(names []string) string {
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}
