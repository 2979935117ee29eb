package pdf

import (
	"bytes"
	"encoding/binary"
	"encoding/xml"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/visionserve/visionserve/internal/ocr"
	"github.com/visionserve/visionserve/internal/testenv"
)

// testPage is grey noise, which compresses to about its own size.
func testPage(w, h int) *image.Gray {
	img := image.NewGray(image.Rect(0, 0, w, h))
	x := uint32(1)
	for i := range img.Pix {
		x = x*1664525 + 1013904223
		img.Pix[i] = uint8(x >> 24)
	}
	return img
}

func oneWord(w, h int) *ocr.Page {
	box := ocr.RectQuad(image.Rect(w/10, h/10, w/2, h/5))
	return &ocr.Page{Width: w, Height: h, Confidence: 0.9, Lines: []ocr.Line{{Text: "word", Confidence: 0.9, Box: box, Review: ocr.TierAccept,
		Words: []ocr.Word{{Text: "word", Confidence: 0.9, Box: box}}}}}
}

func qpdfCheck(t *testing.T, doc []byte) {
	t.Helper()
	bin, err := exec.LookPath("qpdf")
	if err != nil {
		testenv.Missing(t, "qpdf not found: install qpdf (hack/setup.sh does)")
	}
	path := filepath.Join(t.TempDir(), "doc.pdf")
	if err := os.WriteFile(path, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "--check", path).CombinedOutput(); err != nil {
		t.Errorf("qpdf --check: %v\n%s", err, out)
	}
}

// The writer keeps nothing of a page once AddPage returns: the heap after
// 100 pages (40 with -short) is what it was after 10, so a document of
// any length streams.
func TestWriterHoldsNoPages(t *testing.T) {
	w, err := NewWriter(io.Discard, Options{})
	if err != nil {
		t.Fatal(err)
	}
	side := 500 // a 250 kB page image
	pages := 100
	if testing.Short() {
		side, pages = 300, 40 // the race detector makes each page slow
	}
	img, page := testPage(side, side), oneWord(side, side)
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	var at10 uint64
	for i := range pages {
		if err := w.AddPage(Image{Width: side, Height: side, Pixels: img}, page); err != nil {
			t.Fatal(err)
		}
		if i == 9 {
			at10 = heap()
		}
	}
	atEnd := heap()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("heap after 10 pages %d kB, after %d %d kB", at10>>10, pages, atEnd>>10)
	if atEnd > at10+256<<10 {
		t.Errorf("the heap grew by %d kB over %d pages of %d kB each", (atEnd-at10)>>10, pages-10, side*side>>10)
	}
}

// JPEGs go in as they are (DCTDecode, the same bytes); PNGs lend their
// compressed data; a PNG PDF cannot read (alpha) is decoded instead.
func TestImagesEmbeddedAsTheyAre(t *testing.T) {
	src := testPage(64, 48)
	var jb, pb bytes.Buffer
	if err := jpeg.Encode(&jb, src, nil); err != nil {
		t.Fatal(err)
	}
	if err := png.Encode(&pb, src); err != nil {
		t.Fatal(err)
	}
	alpha := image.NewNRGBA(src.Bounds())
	alpha.Set(3, 3, color.NRGBA{255, 0, 0, 128})
	var ab bytes.Buffer
	if err := png.Encode(&ab, alpha); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		img    Image
		filter string
		same   []byte // embedded verbatim
	}{
		{"jpeg", Image{Width: 64, Height: 48, Encoded: jb.Bytes()}, "/DCTDecode", jb.Bytes()},
		{"png grey", Image{Width: 64, Height: 48, Encoded: pb.Bytes()}, "/Predictor 15 /Colors 1 /BitsPerComponent 8", nil},
		{"png with alpha", Image{Width: 64, Height: 48, Encoded: ab.Bytes(), Pixels: alpha}, "/DeviceRGB /BitsPerComponent 8 /Filter /FlateDecode", nil},
		{"bilevel pixels", Image{Width: 64, Height: 48, Pixels: image.NewGray(src.Bounds())}, "/DeviceGray /BitsPerComponent 1", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			w, _ := NewWriter(&b, Options{})
			if err := w.AddPage(tc.img, oneWord(64, 48)); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(b.Bytes(), []byte(tc.filter)) {
				t.Errorf("no %s in the image dictionary", tc.filter)
			}
			if tc.same != nil && !bytes.Contains(b.Bytes(), tc.same) {
				t.Error("the JPEG was not embedded as it is")
			}
			qpdfCheck(t, b.Bytes())
		})
	}
	if Embeddable(ab.Bytes(), 64, 48) || !Embeddable(jb.Bytes(), 64, 48) || Embeddable(jb.Bytes(), 65, 48) {
		t.Error("Embeddable")
	}
}

// PDF/A-2b: the XMP packet identifies the part and conformance and agrees
// with the document information; the output intent carries an ICC
// profile; the trailer has an ID. (veraPDF is not available here: this is
// what can be checked without it.)
func TestPDFAParts(t *testing.T) {
	var b bytes.Buffer
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	w, _ := NewWriter(&b, Options{PDFA: true, Title: "A & B", Created: created, Model: ocr.ModelRef{Name: "ocr-eng", Version: "1"}})
	if err := w.AddPage(Image{Width: 64, Height: 48, Pixels: testPage(64, 48)}, oneWord(64, 48)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	doc := b.String()
	qpdfCheck(t, b.Bytes())
	m := regexp.MustCompile(`(?s)/Type /Metadata /Subtype /XML /Length \d+ >>\nstream\n(.*?)\nendstream`).FindStringSubmatch(doc)
	if m == nil {
		t.Fatal("no unfiltered XMP metadata stream")
	}
	var xmp struct {
		Desc struct {
			Part        string `xml:"part"`
			Conformance string `xml:"conformance"`
			Producer    string `xml:"Producer"`
			CreateDate  string `xml:"CreateDate"`
			Title       string `xml:"title>Alt>li"`
		} `xml:"RDF>Description"`
	}
	if err := xml.Unmarshal([]byte(m[1]), &xmp); err != nil {
		t.Fatalf("XMP: %v", err)
	}
	d := xmp.Desc
	if d.Part != "2" || d.Conformance != "B" || d.Producer != "visionserve" || d.CreateDate != "2026-01-02T03:04:05Z" || d.Title != "A & B" {
		t.Errorf("XMP %+v", d)
	}
	for _, want := range []string{"/CreationDate (D:20260102030405Z)", "/Producer (visionserve)", "/S /GTS_PDFA1", "/DestOutputProfile", "/ID [<"} {
		if !strings.Contains(doc, want) {
			t.Errorf("no %s", want)
		}
	}
	icc := srgbProfile()
	if int(binary.BigEndian.Uint32(icc)) != len(icc) || string(icc[36:40]) != "acsp" || string(icc[12:20]) != "mntrRGB " {
		t.Error("ICC header")
	}
}

// The font program is a well-formed sfnt: sorted tables whose checksums
// match, and a head table whose adjustment makes the file sum to the
// magic number.
func TestGlyphlessFont(t *testing.T) {
	f := glyphlessFont()
	be := binary.BigEndian
	n := int(be.Uint16(f[4:]))
	prev := ""
	for i := range n {
		rec := f[12+16*i:]
		tag, off, length := string(rec[:4]), be.Uint32(rec[8:]), be.Uint32(rec[12:])
		if tag <= prev {
			t.Errorf("table %q after %q", tag, prev)
		}
		prev = tag
		if tag != "head" && checksum(f[off:off+length]) != be.Uint32(rec[4:]) {
			t.Errorf("table %s: checksum", tag)
		}
	}
	if checksum(f) != 0xB1B0AFBA {
		t.Errorf("file checksum %#x", checksum(f))
	}
}

func TestWriterMisuse(t *testing.T) {
	w, _ := NewWriter(io.Discard, Options{})
	if err := w.Close(); err == nil {
		t.Error("a document without pages closed")
	}
	if err := w.AddPage(Image{Width: 1, Height: 1, Pixels: testPage(1, 1)}, nil); err != ErrClosed {
		t.Errorf("AddPage after Close: %v", err)
	}
	w, _ = NewWriter(io.Discard, Options{})
	if err := w.AddPage(Image{Width: 2, Height: 2}, nil); err == nil {
		t.Error("a page without an image was added")
	}
}
