package ui

import (
	"net/http/httptest"
	"strings"
	"testing"
)

// Only the embedded files are served, by exact name: no path reaches
// anything else.
func TestServesOnlyEmbeddedFiles(t *testing.T) {
	h := New()
	for path, want := range map[string]int{
		"/ui/":                200,
		"/ui/index.html":      200,
		"/ui/js/app.js":       200,
		"/ui/app.css":         200,
		"/ui/../ui.go":        404,
		"/ui/assets/app.css":  404,
		"/ui/js/../app.css":   404,
		"/ui/%2e%2e/ui.go":    404,
		"/ui/ui.go":           404,
		"/ui/js/":             404,
		"/ui/index.html/":     404,
		"/ui/.hidden":         404,
		"/ui/js/app.js?x=../": 200,
	} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "http://x"+path, nil)
		h.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("%s: %d, want %d", path, rec.Code, want)
		}
		if csp := rec.Header().Get("Content-Security-Policy"); csp != CSP {
			t.Errorf("%s: CSP %q", path, csp)
		}
	}
}

// The policy forbids inline script and style, and so must the files: no
// inline <script> body, no on* attribute, no style attribute or element.
func TestNoInlineScriptOrStyle(t *testing.T) {
	h := New()
	for name, f := range h.files {
		if !strings.HasSuffix(name, ".html") {
			continue
		}
		s := string(f.data)
		for _, bad := range []string{"<style", " style=", " onclick=", " onload=", " onerror=", "javascript:"} {
			if strings.Contains(s, bad) {
				t.Errorf("%s contains %q", name, bad)
			}
		}
		for _, part := range strings.Split(s, "<script")[1:] {
			if !strings.Contains(part[:strings.Index(part, ">")], "src=") || !strings.HasPrefix(part[strings.Index(part, ">")+1:], "</script>") {
				t.Errorf("%s has an inline script", name)
			}
		}
	}
	if h.Size() == 0 {
		t.Fatal("nothing embedded")
	}
	t.Logf("embedded console: %d files, %d bytes", len(h.files), h.Size())
}
