package pdf

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"crypto/md5"
	"errors"
	"fmt"
	"hash"
	"image"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf16"

	"github.com/visionserve/visionserve/internal/ocr"
)

// DefaultDPI is the resolution assumed for a page image that states none.
const DefaultDPI = 300

// ErrClosed is returned by AddPage and Close after Close.
var ErrClosed = errors.New("pdf: writer closed")

// Options shape a document.
type Options struct {
	// Title goes into the document information (and XMP for PDF/A).
	Title string
	// Model names the model that read the pages (document information).
	Model ocr.ModelRef
	// PDFA makes the document PDF/A-2b: XMP metadata identifying it, an
	// sRGB output intent and a document ID. (The rest of PDF/A-2b — fonts
	// embedded, no transparency, no encryption — holds for every document
	// this package writes.)
	PDFA bool
	// Created is the creation date; zero means now.
	Created time.Time
}

// Image is one page image: the page as displayed, in pixels.
type Image struct {
	// Width and Height are the image's size in pixels.
	Width, Height int
	// DPI is its resolution; 0 means DefaultDPI. It sets the page size.
	DPI float64
	// Pixels holds the image; it may be nil when Encoded is set.
	Pixels image.Image
	// Encoded, when set, is the page's own JPEG or PNG encoding, which
	// displays as is; the writer embeds it without decoding when PDF can
	// carry it (JPEG: grey or YCbCr; PNG: non-interlaced, no alpha, at
	// most 8 bits) and uses Pixels otherwise.
	Encoded []byte
}

// Writer writes a searchable PDF page by page: each page's image, its
// invisible text layer and its metadata are written out as AddPage is
// called, so a document of any length is written holding one page image
// at a time (the writer itself keeps about 30 bytes per page: object
// offsets and page references). Close writes the page tree, the
// cross-reference table and the trailer. A Writer is not safe for
// concurrent use.
//
//	w, err := pdf.NewWriter(out, pdf.Options{Model: ref})
//	for each page { err = w.AddPage(pdf.Image{...}, &page) }
//	err = w.Close()
type Writer struct {
	out     *countingWriter
	opt     Options
	offsets []int64 // byte offset of object n at offsets[n]; index 0 unused
	kids    []int   // page object numbers
	shared  fontFiles
	fonts   map[int]int // Type0 font object by ascent step (fontFor)
	closed  bool
	err     error // first write error; sticky
}

const (
	catalogObj = 1 // written by Close
	pagesObj   = 2 // written by Close, referenced by every page
)

// NewWriter starts a document on w: it writes the header and the font
// the text layers share.
func NewWriter(w io.Writer, opt Options) (*Writer, error) {
	if opt.Created.IsZero() {
		opt.Created = time.Now()
	}
	pw := &Writer{out: newCountingWriter(w), opt: opt, offsets: make([]int64, 3), fonts: map[int]int{}}
	// The binary comment marks the file as binary for transfer programs.
	pw.raw("%PDF-1.7\n%\xE2\xE3\xCF\xD3\n")
	pw.writeFontFiles()
	return pw, pw.err
}

// AddPage writes one page: img under the invisible text of page, whose
// boxes are in page.Width x page.Height coordinates (scaled to the image
// if it has another size). Words are placed one by one so that selecting
// or finding a word highlights it where it is printed.
func (w *Writer) AddPage(img Image, page *ocr.Page) error {
	if w.closed {
		return ErrClosed
	}
	if w.err != nil {
		return w.err
	}
	if img.Width <= 0 || img.Height <= 0 {
		return fmt.Errorf("pdf: page image is %dx%d pixels", img.Width, img.Height)
	}
	x, err := imageXObject(img)
	if err != nil {
		return err
	}
	dpi := img.DPI
	if !(dpi > 0) || dpi > 1e5 {
		dpi = DefaultDPI
	}
	wPt, hPt := float64(img.Width)*72/dpi, float64(img.Height)*72/dpi

	imgObj := w.alloc()
	w.stream(imgObj, x.dict, x.data)
	content, fonts := w.pageContent(wPt, hPt, img, page)
	contentObj := w.alloc()
	w.stream(contentObj, "/Filter /FlateDecode", deflate(content))

	pageObj := w.alloc()
	w.begin(pageObj)
	w.raw(fmt.Sprintf("<< /Type /Page /Parent %d 0 R /MediaBox [0 0 %s %s] /Resources << /XObject << /Im0 %d 0 R >> /Font << %s>> >> /Contents %d 0 R",
		pagesObj, f3(wPt), f3(hPt), imgObj, fonts, contentObj))
	w.raw(" /LastModified " + pdfDate(w.opt.Created) + " /PieceInfo << /visionserve << /LastModified " + pdfDate(w.opt.Created) + " /Private " + pageInfo(page) + " >> >> >>")
	w.end()
	w.kids = append(w.kids, pageObj)
	return w.err
}

// Close finishes the document. It does not close the underlying writer.
func (w *Writer) Close() error {
	if w.closed {
		return ErrClosed
	}
	w.closed = true
	if w.err != nil {
		return w.err
	}
	if len(w.kids) == 0 {
		return errors.New("pdf: a document needs at least one page")
	}
	info := w.alloc()
	w.begin(info)
	date := pdfDate(w.opt.Created)
	w.raw("<< /Producer (visionserve) /Creator (visionserve) /CreationDate " + date + " /ModDate " + date)
	if w.opt.Title != "" {
		w.raw(" /Title " + textString(w.opt.Title))
	}
	if w.opt.Model.Name != "" {
		w.raw(" /Subject " + textString("OCR by "+w.opt.Model.Name+" version "+w.opt.Model.Version))
	}
	w.raw(" >>")
	w.end()

	catalog := ""
	if w.opt.PDFA {
		meta := w.alloc()
		xmp := xmpPacket(w.opt)
		// PDF/A: the metadata stream is not filtered, so it stays readable.
		w.stream(meta, "/Type /Metadata /Subtype /XML", xmp)
		icc := w.alloc()
		w.stream(icc, "/N 3 /Filter /FlateDecode", deflate(srgbProfile()))
		catalog = fmt.Sprintf(" /Metadata %d 0 R /OutputIntents [<< /Type /OutputIntent /S /GTS_PDFA1 /OutputConditionIdentifier (sRGB IEC61966-2.1) /Info (sRGB IEC61966-2.1) /DestOutputProfile %d 0 R >>]", meta, icc)
	}

	w.begin(pagesObj)
	var kids strings.Builder
	for i, k := range w.kids {
		if i > 0 {
			kids.WriteByte(' ')
		}
		kids.WriteString(strconv.Itoa(k) + " 0 R")
	}
	w.raw(fmt.Sprintf("<< /Type /Pages /Count %d /Kids [%s] >>", len(w.kids), kids.String()))
	w.end()
	w.begin(catalogObj)
	w.raw("<< /Type /Catalog /Pages 2 0 R" + catalog + " >>")
	w.end()

	id := fmt.Sprintf("<%x>", w.out.sum())
	xref := w.out.n
	w.raw(fmt.Sprintf("xref\n0 %d\n0000000000 65535 f\r\n", len(w.offsets)))
	for _, off := range w.offsets[1:] {
		w.raw(fmt.Sprintf("%010d 00000 n\r\n", off))
	}
	w.raw(fmt.Sprintf("trailer\n<< /Size %d /Root %d 0 R /Info %d 0 R /ID [%s %s] >>\nstartxref\n%d\n%%%%EOF\n", len(w.offsets), catalogObj, info, id, id, xref))
	if w.err == nil {
		w.err = w.out.w.Flush()
	}
	return w.err
}

// pageContent draws the image over the whole page and then, in text
// rendering mode 3 (invisible), every word. All words of a page share one
// font size (fontSize), so that text extraction and selection group them
// into lines and blocks as they are printed (poppler, for one, starts a
// new block where the font size changes by 5%). Each word's own height
// comes from the font variant it is set in (fontFor: the variants differ
// only in their ascent); its baseline is the bottom edge of its quad, the
// text matrix turns that baseline along the quad, and the horizontal
// scaling stretches its glyphs (each half a font size wide) to the quad's
// width. It returns the content and the page's font resources.
func (w *Writer) pageContent(wPt, hPt float64, img Image, page *ocr.Page) ([]byte, string) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "q %s 0 0 %s 0 0 cm /Im0 Do Q\n", f3(wPt), f3(hPt))
	if page == nil {
		return b.Bytes(), ""
	}
	sx, sy := wPt/float64(img.Width), hPt/float64(img.Height)
	if page.Width > 0 && page.Height > 0 {
		sx, sy = wPt/float64(page.Width), hPt/float64(page.Height)
	}
	toPDF := func(q ocr.Quad) quad {
		var out quad
		for i, p := range q {
			out[i] = [2]float64{p[0] * sx, hPt - p[1]*sy}
		}
		return out
	}
	size := fontSize(page, toPDF)
	if size == 0 {
		return b.Bytes(), ""
	}
	used := map[int]bool{}
	b.WriteString("BT 3 Tr\n")
	for _, l := range page.Lines {
		for i, word := range l.Words {
			glyphs := len(utf16Codes(word.Text))
			q := toPDF(word.Box)
			width, height := q.width(), q.height()
			if glyphs == 0 || width < 0.01 || height < 0.01 {
				continue
			}
			text := word.Text
			if i < len(l.Words)-1 {
				text += " " // so copied text has its spaces; viewers end the word there
			}
			// Along the text: the bottom edge, averaged with the top.
			dx, dy := ((q[1][0]-q[0][0])+(q[2][0]-q[3][0]))/2, ((q[1][1]-q[0][1])+(q[2][1]-q[3][1]))/2
			d := math.Hypot(dx, dy)
			if d < 0.01 {
				continue
			}
			cos, sin := dx/d, dy/d
			step := min(max(int(math.Round(ascentSteps*height/size)), 1), maxAscentStep)
			used[step] = true
			scale := 100 * width / (float64(glyphs) * size * glyphWidth / unitsPerEm)
			fmt.Fprintf(&b, "/F%d %s Tf %s Tz %s %s %s %s %s %s Tm <", step, f3(size), f3(scale), f4(cos), f4(sin), f4(-sin), f4(cos), f3(q[3][0]), f3(q[3][1]))
			for _, c := range utf16Codes(text) {
				fmt.Fprintf(&b, "%04X", c)
			}
			b.WriteString("> Tj\n")
		}
	}
	b.WriteString("ET\n")
	steps := make([]int, 0, len(used))
	for s := range used {
		steps = append(steps, s)
	}
	slices.Sort(steps)
	var res strings.Builder
	for _, s := range steps {
		fmt.Fprintf(&res, "/F%d %d 0 R ", s, w.fontFor(s))
	}
	return b.Bytes(), res.String()
}

// fontSize is the font size of a page's text layer: the median height of
// its lines, in points (0 for a page without text).
func fontSize(page *ocr.Page, toPDF func(ocr.Quad) quad) float64 {
	var hs []float64
	for _, l := range page.Lines {
		if len(l.Words) > 0 {
			hs = append(hs, toPDF(l.Box).height())
		}
	}
	if len(hs) == 0 {
		return 0
	}
	slices.Sort(hs)
	if m := hs[len(hs)/2]; m >= 0.01 {
		return m
	}
	return 0
}

// quad is a word's corners in PDF coordinates (points, y up), in reading
// order: the text's top-left, top-right, bottom-right, bottom-left.
type quad [4][2]float64

func (q quad) width() float64 {
	return (math.Hypot(q[1][0]-q[0][0], q[1][1]-q[0][1]) + math.Hypot(q[2][0]-q[3][0], q[2][1]-q[3][1])) / 2
}

func (q quad) height() float64 {
	return (math.Hypot(q[0][0]-q[3][0], q[0][1]-q[3][1]) + math.Hypot(q[1][0]-q[2][0], q[1][1]-q[2][1])) / 2
}

// utf16Codes are the character codes of s: its UTF-16 code units (the
// font's Identity-H CIDs, which ToUnicode maps back). Characters PDF text
// cannot carry (controls) are dropped.
func utf16Codes(s string) []uint16 {
	var rs []rune
	for _, r := range s {
		if r < 0x20 || r == 0x7F || r == 0xFFFD {
			continue
		}
		rs = append(rs, r)
	}
	return utf16.Encode(rs)
}

// pageInfo is the page's OCR metadata (the PieceInfo's Private data):
// its confidence, turn, line count and lines per review tier.
func pageInfo(p *ocr.Page) string {
	if p == nil {
		return "<< >>"
	}
	tiers := map[ocr.Tier]int{}
	for _, l := range p.Lines {
		tiers[l.Review]++
	}
	return fmt.Sprintf("<< /Confidence %s /Angle %d /Lines %d /Accept %d /Verify %d /Review %d >>",
		f4(p.Confidence), p.Angle, len(p.Lines), tiers[ocr.TierAccept], tiers[ocr.TierVerify], tiers[ocr.TierReview])
}

// ascentSteps is how finely a word's height is matched: a word set at
// the page's font size in font step k is k/ascentSteps of that size tall,
// so its box is off by at most 1/64 of a typical line's height (under a
// pixel for lines up to 64 pixels). Finer steps mean more font variants
// (three small objects each) in the file. Words up to
// maxAscentStep/ascentSteps (2.9) times the font size are matched; poppler
// ignores an ascent of 3 em or more.
const (
	ascentSteps   = 32
	maxAscentStep = 92
)

// fontFiles are the objects every font variant shares.
type fontFiles struct{ file, gidMap, toUnicode int }

// writeFontFiles writes the font program, the CID-to-glyph map and the
// ToUnicode map that all variants of the invisible font share (font.go).
func (w *Writer) writeFontFiles() {
	f := fontObjects()
	w.shared = fontFiles{w.alloc(), w.alloc(), w.alloc()}
	w.stream(w.shared.file, fmt.Sprintf("/Length1 %d /Filter /FlateDecode", f.fontLen), f.font)
	w.stream(w.shared.gidMap, "/Filter /FlateDecode", f.gidMap)
	w.stream(w.shared.toUnicode, "/Filter /FlateDecode", f.toUnicode)
}

// fontFor returns the Type0 font whose glyph boxes are step/ascentSteps
// of the font size tall (Ascent in its descriptor; Descent -1, so a box
// rests on the baseline), writing it on first use. Text extraction and
// viewers take a word's height from its font's ascent and descent, so
// these variants let words of one line share a font size (and so read as
// one line) while each highlights its own height.
func (w *Writer) fontFor(step int) int {
	if obj, ok := w.fonts[step]; ok {
		return obj
	}
	ascent := (unitsPerEm*step + ascentSteps/2) / ascentSteps
	name := fmt.Sprintf("%s-%d", fontName, step)
	font, cid, desc := w.alloc(), w.alloc(), w.alloc()
	w.begin(font)
	w.raw(fmt.Sprintf("<< /Type /Font /Subtype /Type0 /BaseFont /%s /Encoding /Identity-H /DescendantFonts [%d 0 R] /ToUnicode %d 0 R >>", name, cid, w.shared.toUnicode))
	w.end()
	w.begin(cid)
	w.raw(fmt.Sprintf("<< /Type /Font /Subtype /CIDFontType2 /BaseFont /%s /CIDSystemInfo << /Registry (Adobe) /Ordering (Identity) /Supplement 0 >> /FontDescriptor %d 0 R /DW %d /CIDToGIDMap %d 0 R >>", name, desc, glyphWidth, w.shared.gidMap))
	w.end()
	w.begin(desc)
	w.raw(fmt.Sprintf("<< /Type /FontDescriptor /FontName /%s /Flags 5 /FontBBox [0 0 %d %d] /ItalicAngle 0 /Ascent %d /Descent -1 /CapHeight %d /StemV 80 /FontFile2 %d 0 R >>", name, glyphWidth, unitsPerEm, ascent, ascent, w.shared.file))
	w.end()
	w.fonts[step] = font
	return font
}

// fontObjects are the font's compressed streams, built once per process.
var fontObjects = sync.OnceValue(func() (f struct {
	font, gidMap, toUnicode []byte
	fontLen                 int
}) {
	font := glyphlessFont()
	f.font, f.fontLen = deflate(font), len(font)
	m := make([]byte, 2<<16) // every CID to glyph 1
	for i := 1; i < len(m); i += 2 {
		m[i] = 1
	}
	f.gidMap = deflate(m)
	f.toUnicode = deflate(toUnicodeCMap())
	return f
})

// toUnicodeCMap maps every 2-byte code to the same UTF-16 code unit, in
// ranges that never cross a change of the first byte.
func toUnicodeCMap() []byte {
	var b bytes.Buffer
	b.WriteString("/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n/CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n")
	for hi := 0; hi < 256; hi += 100 {
		n := min(100, 256-hi)
		fmt.Fprintf(&b, "%d beginbfrange\n", n)
		for k := hi; k < hi+n; k++ {
			fmt.Fprintf(&b, "<%02X00> <%02XFF> <%02X00>\n", k, k, k)
		}
		b.WriteString("endbfrange\n")
	}
	b.WriteString("endcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n")
	return b.Bytes()
}

// xmpPacket is the document's XMP metadata for PDF/A-2b; its entries
// match the document information dictionary, as PDF/A requires.
func xmpPacket(opt Options) []byte {
	date := opt.Created.UTC().Format("2006-01-02T15:04:05Z")
	title := ""
	if opt.Title != "" {
		title = "<dc:title><rdf:Alt><rdf:li xml:lang=\"x-default\">" + xmlEscape(opt.Title) + "</rdf:li></rdf:Alt></dc:title>\n"
	}
	subject := ""
	if opt.Model.Name != "" {
		subject = "<dc:description><rdf:Alt><rdf:li xml:lang=\"x-default\">" + xmlEscape("OCR by "+opt.Model.Name+" version "+opt.Model.Version) + "</rdf:li></rdf:Alt></dc:description>\n"
	}
	return []byte("<?xpacket begin=\"\xEF\xBB\xBF\" id=\"W5M0MpCehiHzreSzNTczkc9d\"?>\n" +
		"<x:xmpmeta xmlns:x=\"adobe:ns:meta/\">\n<rdf:RDF xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\">\n" +
		"<rdf:Description rdf:about=\"\" xmlns:pdfaid=\"http://www.aiim.org/pdfa/ns/id/\" xmlns:pdf=\"http://ns.adobe.com/pdf/1.3/\" xmlns:xmp=\"http://ns.adobe.com/xap/1.0/\" xmlns:dc=\"http://purl.org/dc/elements/1.1/\">\n" +
		"<pdfaid:part>2</pdfaid:part>\n<pdfaid:conformance>B</pdfaid:conformance>\n" +
		"<pdf:Producer>visionserve</pdf:Producer>\n<xmp:CreatorTool>visionserve</xmp:CreatorTool>\n" +
		"<xmp:CreateDate>" + date + "</xmp:CreateDate>\n<xmp:ModifyDate>" + date + "</xmp:ModifyDate>\n" +
		title + subject +
		"</rdf:Description>\n</rdf:RDF>\n</x:xmpmeta>\n<?xpacket end=\"w\"?>")
}

func xmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "\"", "&quot;").Replace(s)
}

// textString encodes s as a PDF text string: UTF-16BE with a byte order
// mark, in hex.
func textString(s string) string {
	var b strings.Builder
	b.WriteString("<FEFF")
	for _, c := range utf16.Encode([]rune(s)) {
		fmt.Fprintf(&b, "%04X", c)
	}
	b.WriteString(">")
	return b.String()
}

func pdfDate(t time.Time) string { return "(D:" + t.UTC().Format("20060102150405") + "Z)" }

func f3(v float64) string { return fnum(v, 1e3) }
func f4(v float64) string { return fnum(v, 1e4) }

func fnum(v, prec float64) string {
	s := strconv.FormatFloat(math.Round(v*prec)/prec, 'f', -1, 64)
	if s == "-0" {
		return "0"
	}
	return s
}

func deflate(data []byte) []byte {
	var b bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&b, zlib.DefaultCompression)
	_, _ = zw.Write(data)
	_ = zw.Close()
	return b.Bytes()
}

func (w *Writer) alloc() int {
	w.offsets = append(w.offsets, 0)
	return len(w.offsets) - 1
}

func (w *Writer) begin(obj int) {
	w.offsets[obj] = w.out.n
	w.raw(strconv.Itoa(obj) + " 0 obj\n")
}

func (w *Writer) end() { w.raw("\nendobj\n") }

func (w *Writer) stream(obj int, dict string, data []byte) {
	w.begin(obj)
	w.raw(fmt.Sprintf("<< %s /Length %d >>\nstream\n", dict, len(data)))
	w.bytes(data)
	w.raw("\nendstream")
	w.end()
}

func (w *Writer) raw(s string) {
	if w.err == nil {
		_, w.err = w.out.WriteString(s)
	}
}

func (w *Writer) bytes(b []byte) {
	if w.err == nil {
		_, w.err = w.out.Write(b)
	}
}

// countingWriter counts and hashes what it writes: offsets for the
// cross-reference table, and a digest for the document ID.
type countingWriter struct {
	w *bufio.Writer
	n int64
	h hash.Hash
}

func newCountingWriter(w io.Writer) *countingWriter {
	return &countingWriter{w: bufio.NewWriterSize(w, 64<<10), h: md5.New()}
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.h.Write(p[:n])
	return n, err
}

func (c *countingWriter) WriteString(s string) (int, error) { return c.Write([]byte(s)) }

func (c *countingWriter) sum() []byte { return c.h.Sum(nil) }
