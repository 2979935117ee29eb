// Package ui is the web console: static files embedded in the binary and
// served under /ui/ with a strict Content Security Policy. The console
// holds no server-side logic and no secret: it is plain HTML, CSS and
// JavaScript modules that call the public API (and, on the admin
// listener, the model API) with the credential the user enters, which the
// browser keeps in sessionStorage. Everything it may do, the API lets that
// credential do anyway.
//
// The files are served as they are committed: there is no build step, no
// third-party script and nothing fetched from another origin, so the
// policy can forbid inline script and style and every other origin.
package ui

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
)

//go:embed assets
var assets embed.FS

// Prefix is the path the console is served under.
const Prefix = "/ui/"

// CSP is the console's Content Security Policy: scripts, styles and
// fetches from its own origin only, images also from blob: URLs (the page
// the user dropped), no inline script or style, no plugins, no framing,
// no form posts anywhere.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; " +
	"connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// file is one embedded file with its validator.
type file struct {
	data        []byte
	etag        string
	contentType string
}

// Handler serves the console.
type Handler struct {
	files map[string]file // by path under assets/, "index.html" for /ui/
}

// New returns the console's handler, with every file read and hashed once.
func New() *Handler {
	h := &Handler{files: map[string]file{}}
	_ = fs.WalkDir(assets, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := assets.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		ct := mime.TypeByExtension(path.Ext(p))
		if path.Ext(p) == ".js" {
			ct = "text/javascript; charset=utf-8" // modules need a JavaScript type whatever the system's mime.types says
		}
		h.files[strings.TrimPrefix(p, "assets/")] = file{data: data, etag: `"` + hex.EncodeToString(sum[:8]) + `"`, contentType: ct}
		return nil
	})
	return h
}

// Size is the total size of the embedded files in bytes.
func (h *Handler) Size() int {
	n := 0
	for _, f := range h.files {
		n += len(f.data)
	}
	return n
}

// ServeHTTP serves the file the path names under Prefix (index.html for
// the prefix itself). Files are revalidated on every load (no-cache with
// an ETag), so a new binary's console is never mixed with an old one's.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, Prefix)
	if name == "" {
		name = "index.html"
	}
	hd := w.Header()
	hd.Set("Content-Security-Policy", CSP)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
	hd.Set("X-Frame-Options", "DENY")
	f, ok := h.files[name]
	if !ok {
		hd.Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte("no such console file\n"))
		return
	}
	hd.Set("Cache-Control", "no-cache")
	hd.Set("ETag", f.etag)
	hd.Set("Content-Type", f.contentType)
	if r.Header.Get("If-None-Match") == f.etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	_, _ = w.Write(f.data)
}
