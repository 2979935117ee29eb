package render

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/visionserve/visionserve/internal/ocr"
	"github.com/visionserve/visionserve/internal/testenv"
)

// fixture loads a Result the OCR pipeline produced for a shared page
// (testdata/*.json): eurotext.tif (escapes, accents) and
// phototest-rotated-L.png (a page turned 90 degrees: quads, not boxes).
func fixture(t testing.TB, name string) *ocr.Result {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var res ocr.Result
	if err := json.Unmarshal(data, &res); err != nil {
		t.Fatal(err)
	}
	return &res
}

// fixtures are the results every format is checked on: each page alone
// and the two as one two-page document.
func fixtures(t testing.TB) map[string]*ocr.Result {
	euro, left := fixture(t, "eurotext"), fixture(t, "rotated-left")
	two := *euro
	two.Pages = append(append([]ocr.Page{}, euro.Pages...), left.Pages...)
	two.Pages[1].Index = 1
	return map[string]*ocr.Result{"eurotext": euro, "rotated-left": left, "two-pages": &two}
}

func render(t testing.TB, format string, res *ocr.Result, pages Pages) []byte {
	t.Helper()
	f, err := Lookup(format)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := f.Render(context.Background(), &b, res, pages); err != nil {
		t.Fatalf("%s: %v", format, err)
	}
	return b.Bytes()
}

// tool returns the path of a command the test needs, skipping (failing
// under CI=true) when it is missing; hack/setup.sh installs them all.
func tool(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		testenv.Missing(t, name+" not found: install "+pkg+" (hack/setup.sh does)")
	}
	return p
}

// xmllint validates doc against a schema in testdata/schema, offline.
func xmllint(t *testing.T, doc []byte, schema string) {
	t.Helper()
	bin := tool(t, "xmllint", "libxml2-utils")
	dir := t.TempDir()
	path := filepath.Join(dir, "doc.xml")
	if err := os.WriteFile(path, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(filepath.Join("testdata", "schema"))
	cmd := exec.Command(bin, "--noout", "--nonet", "--schema", filepath.Join(abs, schema), path)
	cmd.Env = append(os.Environ(), "XML_CATALOG_FILES="+filepath.Join(abs, "catalog.xml"))
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("validates")) {
		t.Errorf("xmllint --schema %s: %v\n%s", schema, err, out)
	}
}

// Must show: ALTO output is valid against the official ALTO 4 schemas.
func TestALTOValidatesAgainstSchema(t *testing.T) {
	for name, res := range fixtures(t) {
		t.Run(name, func(t *testing.T) {
			doc := render(t, "alto", res, nil)
			for _, xsd := range []string{"alto-4-0.xsd", "alto-4-4.xsd"} {
				xmllint(t, doc, xsd)
			}
			checkWords(t, res, altoWords(t, doc))
		})
	}
}

// Must show: PAGE output is valid against PRImA's 2019 schema.
func TestPAGEValidatesAgainstSchema(t *testing.T) {
	for name, res := range fixtures(t) {
		if len(res.Pages) != 1 {
			continue
		}
		t.Run(name, func(t *testing.T) {
			doc := render(t, "page", res, nil)
			xmllint(t, doc, "pagecontent-2019-07-15.xsd")
			checkWords(t, res, pageWords(t, doc))
			if tiers := regexp.MustCompile(`review \{tier:(accept|verify|review);\}`).FindAll(doc, -1); len(tiers) != countLines(res) {
				t.Errorf("%d lines carry a review tier, want %d", len(tiers), countLines(res))
			}
		})
	}
}

// A PAGE document holds one page: several are a bad option, not a
// document with pages missing.
func TestPAGERefusesSeveralPages(t *testing.T) {
	f, _ := Lookup("page")
	err := f.Render(context.Background(), &bytes.Buffer{}, fixtures(t)["two-pages"], nil)
	if !errors.Is(err, ocr.ErrBadOption) {
		t.Fatalf("got %v, want ErrBadOption", err)
	}
}

// word is one word as a format wrote it.
type word struct {
	text string
	conf float64
	box  [4]int // x0 y0 x1 y1
}

// checkWords: every word of the result, in order, with its text and
// confidence (to the format's precision) and box within its page.
func checkWords(t *testing.T, res *ocr.Result, got [][]word) {
	t.Helper()
	if len(got) != len(res.Pages) {
		t.Fatalf("%d pages, want %d", len(got), len(res.Pages))
	}
	for pi, p := range res.Pages {
		var want []ocr.Word
		for _, l := range p.Lines {
			want = append(want, l.Words...)
		}
		if len(got[pi]) != len(want) {
			t.Fatalf("page %d: %d words, want %d", pi, len(got[pi]), len(want))
		}
		for i, w := range want {
			g := got[pi][i]
			if g.text != w.Text {
				t.Errorf("page %d word %d: text %q, want %q", pi, i, g.text, w.Text)
			}
			if d := g.conf - w.Confidence; d > 0.005 || d < -0.005 {
				t.Errorf("page %d word %q: confidence %v, want %v", pi, w.Text, g.conf, w.Confidence)
			}
			b := g.box
			if b[0] < 0 || b[1] < 0 || b[2] > p.Width || b[3] > p.Height || b[0] > b[2] || b[1] > b[3] {
				t.Errorf("page %d word %q: box %v outside the %dx%d page", pi, w.Text, b, p.Width, p.Height)
			}
			if wb := clip(w.Box, &p); absInt(wb.Min.X-b[0]) > 1 || absInt(wb.Min.Y-b[1]) > 1 || absInt(wb.Max.X-b[2]) > 1 || absInt(wb.Max.Y-b[3]) > 1 {
				t.Errorf("page %d word %q: box %v, want %v", pi, w.Text, b, wb)
			}
		}
	}
}

func countLines(res *ocr.Result) int {
	n := 0
	for _, p := range res.Pages {
		n += len(p.Lines)
	}
	return n
}

// xmlElements walks doc and calls fn for every start element.
func xmlElements(t *testing.T, doc []byte, fn func(d *xml.Decoder, e xml.StartElement)) {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(doc))
	d.Strict = true
	for {
		tok, err := d.Token()
		if err != nil {
			if err.Error() != "EOF" {
				t.Fatalf("XML: %v", err)
			}
			return
		}
		if e, ok := tok.(xml.StartElement); ok {
			fn(d, e)
		}
	}
}

func attr(e xml.StartElement, name string) string {
	for _, a := range e.Attr {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	v, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return v
}

func atof(t *testing.T, s string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return v
}

func altoWords(t *testing.T, doc []byte) [][]word {
	var out [][]word
	xmlElements(t, doc, func(_ *xml.Decoder, e xml.StartElement) {
		switch e.Name.Local {
		case "Page":
			out = append(out, nil)
		case "String":
			x, y := atoi(t, attr(e, "HPOS")), atoi(t, attr(e, "VPOS"))
			w := word{text: attr(e, "CONTENT"), conf: atof(t, attr(e, "WC")),
				box: [4]int{x, y, x + atoi(t, attr(e, "WIDTH")), y + atoi(t, attr(e, "HEIGHT"))}}
			out[len(out)-1] = append(out[len(out)-1], w)
		}
	})
	return out
}

func pageWords(t *testing.T, doc []byte) [][]word {
	type textEquiv struct {
		Conf    string `xml:"conf,attr"`
		Unicode string `xml:"Unicode"`
	}
	type pageWord struct {
		Coords struct {
			Points string `xml:"points,attr"`
		} `xml:"Coords"`
		TextEquiv textEquiv `xml:"TextEquiv"`
	}
	var out [][]word
	xmlElements(t, doc, func(d *xml.Decoder, e xml.StartElement) {
		switch e.Name.Local {
		case "Page":
			out = append(out, nil)
		case "Word":
			var pw pageWord
			if err := d.DecodeElement(&pw, &e); err != nil {
				t.Fatal(err)
			}
			w := word{text: pw.TextEquiv.Unicode, conf: atof(t, pw.TextEquiv.Conf), box: [4]int{1 << 30, 1 << 30, -1, -1}}
			for _, pt := range strings.Fields(pw.Coords.Points) {
				var x, y int
				if _, err := fmt.Sscanf(pt, "%d,%d", &x, &y); err != nil {
					t.Fatal(err)
				}
				w.box = [4]int{min(w.box[0], x), min(w.box[1], y), max(w.box[2], x), max(w.box[3], y)}
			}
			out[len(out)-1] = append(out[len(out)-1], w)
		}
	})
	return out
}

func absInt(v int) int {
	if v < 0 {
		return -v
	}
	return v
}
