package render

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/visionserve/visionserve/internal/imageio/imagetest"
	"github.com/visionserve/visionserve/internal/ocr"
)

func streamer(t *testing.T, name string) Streamer {
	t.Helper()
	f, err := Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	s, ok := f.Renderer.(Streamer)
	if !ok {
		t.Fatalf("%s does not stream", name)
	}
	return s
}

// stream writes pages through a format's stream.
func stream(t *testing.T, name string, doc Document, pages ...StreamPage) ([]byte, error) {
	t.Helper()
	var b bytes.Buffer
	st, err := streamer(t, name).NewStream(&b, doc)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pages {
		if err := st.Add(context.Background(), p); err != nil {
			return b.Bytes(), err
		}
	}
	err = st.Close()
	return b.Bytes(), err
}

// The formats that hold several pages stream, and a document streamed
// page by page is the document Render writes.
func TestStreamIsRender(t *testing.T) {
	for _, name := range []string{"text", "hocr", "alto", "pdf", "pdfa"} {
		streamer(t, name)
		if f, _ := Lookup(name); f.Images != strings.HasPrefix(name, "pdf") {
			t.Errorf("%s: Images is %v", name, f.Images)
		}
	}
	for _, name := range []string{"json", "page"} {
		f, _ := Lookup(name)
		if _, ok := f.Renderer.(Streamer); ok {
			t.Errorf("%s streams", name)
		}
	}
	res := fixtures(t)["two-pages"]
	for _, name := range []string{"hocr", "alto"} {
		var pages []StreamPage
		for i := range res.Pages {
			pages = append(pages, StreamPage{Number: i, Result: &res.Pages[i]})
		}
		got, err := stream(t, name, Document{Model: res.Model, Pages: len(res.Pages)}, pages...)
		if err != nil {
			t.Fatal(err)
		}
		if want := render(t, name, res, nil); !bytes.Equal(got, want) {
			t.Errorf("%s: the stream differs from Render:\n%s", name, got)
		}
	}
	one := fixtures(t)["eurotext"]
	got, err := stream(t, "text", Document{}, StreamPage{Result: &one.Pages[0]})
	if want := render(t, "text", one, nil); err != nil || !bytes.Equal(got, want) {
		t.Errorf("text: %v %q, want %q", err, got, want)
	}
}

// A page without a result (one a job could not read) is an empty page of
// text, an image without text in a PDF, and is left out of hOCR and ALTO,
// whose other pages keep their numbers.
func TestStreamPageWithoutResult(t *testing.T) {
	res := fixtures(t)["two-pages"]
	first, second := &res.Pages[0], &res.Pages[1]
	doc := Document{Model: res.Model, Pages: 2}
	pages := []StreamPage{{Number: 0, Result: first}, {Number: 1}, {Number: 2, Result: second}}

	text, err := stream(t, "text", doc, pages...)
	if want := ocr.PlainText([]ocr.Page{*first}) + "\f\f" + ocr.PlainText([]ocr.Page{*second}) + "\n"; err != nil || string(text) != want {
		t.Errorf("text: %v %q, want %q", err, text, want)
	}
	hocr, err := stream(t, "hocr", doc, pages...)
	if err != nil || !bytes.Contains(hocr, []byte(`id="page_1"`)) || bytes.Contains(hocr, []byte(`id="page_2"`)) ||
		!bytes.Contains(hocr, []byte(`id="page_3" title="bbox 0 0 480 640; ppageno 2;`)) {
		t.Errorf("hocr: %v\n%s", err, hocr)
	}
	alto, err := stream(t, "alto", doc, pages...)
	if err != nil || !bytes.Contains(alto, []byte(`<Page ID="p1" PHYSICAL_IMG_NR="1"`)) || bytes.Contains(alto, []byte(`"p2"`)) ||
		!bytes.Contains(alto, []byte(`<Page ID="p3" PHYSICAL_IMG_NR="3"`)) {
		t.Errorf("alto: %v\n%s", err, alto)
	}
	xmllint(t, alto, "alto-4-4.xsd")

	// PDF: an image for every page that has one; a page without a result
	// whose image cannot be had is left out, one with a result fails.
	img := func(w, h int) func(context.Context) (Image, error) {
		return func(context.Context) (Image, error) {
			return Image{Width: w, Height: h, Pixels: imagetest.Marked(w, h)}, nil
		}
	}
	broken := func(context.Context) (Image, error) { return Image{}, errors.New("gone") }
	pdf, err := stream(t, "pdf", doc,
		StreamPage{Number: 0, Result: first, Image: img(first.Width, first.Height)},
		StreamPage{Number: 1, Image: img(100, 100)},
		StreamPage{Number: 2, Image: broken},
		StreamPage{Number: 3},
		StreamPage{Number: 4, Result: second, Image: img(second.Width, second.Height)})
	if err != nil {
		t.Fatal(err)
	}
	path := writeTemp(t, "doc.pdf", pdf)
	qpdfCheck(t, path)
	if pages := strings.Split(strings.TrimRight(pdftotext(t, path), "\f"), "\f"); len(pages) != 3 || strings.TrimSpace(pages[1]) != "" ||
		!strings.Contains(pages[0], "schnelle") || !strings.Contains(pages[2], "quick") {
		t.Errorf("pdftotext: %d pages %q", len(pages), pages)
	}
	if _, err := stream(t, "pdf", doc, StreamPage{Number: 0, Result: first, Image: broken}); err == nil || err.Error() != "gone" {
		t.Errorf("a page with a result and no image: %v", err)
	}
	if _, err := stream(t, "pdf", doc, StreamPage{Number: 0, Result: first}); err == nil {
		t.Error("a page with a result and no image source: no error")
	}
}
