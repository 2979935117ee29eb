package render

import (
	"encoding/xml"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/visionserve/visionserve/internal/testenv"
)

// w3cCatalog is where Debian's w3c-sgml-lib puts the XHTML DTDs' catalog.
const w3cCatalog = "/usr/share/xml/w3c-sgml-lib/schema/dtd/catalog.xml"

// Must show: hOCR is valid XHTML, its elements nest as hOCR says, every
// box lies inside its page and every word's text is the JSON's.
func TestHOCRStructureAndWords(t *testing.T) {
	for name, res := range fixtures(t) {
		t.Run(name, func(t *testing.T) {
			doc := render(t, "hocr", res, nil)
			validXHTML(t, doc)
			got := hocrWords(t, doc)
			checkWords(t, res, got)
			if n := strings.Count(string(doc), "x_visionserve_review "); n != countLines(res) {
				t.Errorf("%d lines carry a review tier, want %d", n, countLines(res))
			}
		})
	}
}

func validXHTML(t *testing.T, doc []byte) {
	t.Helper()
	bin := tool(t, "xmllint", "libxml2-utils")
	if _, err := os.Stat(w3cCatalog); err != nil {
		testenv.Missing(t, "the XHTML DTDs are missing: install w3c-sgml-lib (hack/setup.sh does)")
	}
	path := t.TempDir() + "/doc.xhtml"
	if err := os.WriteFile(path, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--noout", "--nonet", "--valid", path)
	cmd.Env = append(os.Environ(), "XML_CATALOG_FILES="+w3cCatalog)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("xmllint --valid (XHTML 1.0 Transitional): %v\n%s", err, out)
	}
}

// hocrWords reads the words of each ocr_page, checking that every hOCR
// element sits in its parent class and that its bbox is in the page.
func hocrWords(t *testing.T, doc []byte) [][]word {
	parent := map[string]string{"ocr_page": "", "ocr_carea": "ocr_page", "ocr_par": "ocr_carea", "ocr_line": "ocr_par", "ocrx_word": "ocr_line"}
	var out [][]word
	var stack []string // hOCR classes of the open elements ("" for others)
	var page [4]int
	d := xml.NewDecoder(strings.NewReader(string(doc)))
	d.Strict = true
	d.Entity = xml.HTMLEntity
	var cur *word
	for {
		tok, err := d.Token()
		if err != nil {
			break
		}
		switch e := tok.(type) {
		case xml.StartElement:
			class := attr(e, "class")
			stack = append(stack, class)
			want, ok := parent[class]
			if !ok {
				continue
			}
			enclosing := ""
			for i := len(stack) - 2; i >= 0; i-- {
				if stack[i] != "" {
					enclosing = stack[i]
					break
				}
			}
			if enclosing != want {
				t.Fatalf("%s inside %q, want inside %q", class, enclosing, want)
			}
			props := hocrProps(attr(e, "title"))
			var b [4]int
			for i, f := range strings.Fields(props["bbox"]) {
				b[i] = atoi(t, f)
			}
			if class == "ocr_page" {
				page = b
				out = append(out, nil)
				continue
			}
			if b[0] < page[0] || b[1] < page[1] || b[2] > page[2] || b[3] > page[3] || b[0] > b[2] || b[1] > b[3] {
				t.Errorf("%s bbox %v outside page %v", class, b, page)
			}
			if class == "ocrx_word" {
				out[len(out)-1] = append(out[len(out)-1], word{conf: atof(t, props["x_wconf"]) / 100, box: b})
				cur = &out[len(out)-1][len(out[len(out)-1])-1]
			}
		case xml.CharData:
			if cur != nil {
				cur.text += string(e)
			}
		case xml.EndElement:
			if stack[len(stack)-1] == "ocrx_word" {
				cur = nil
			}
			stack = stack[:len(stack)-1]
		}
	}
	return out
}

// hocrProps splits a title into its properties.
func hocrProps(title string) map[string]string {
	props := map[string]string{}
	for _, p := range strings.Split(title, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(p), " ")
		props[k] = v
	}
	return props
}
