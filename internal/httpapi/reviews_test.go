package httpapi_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/visionserve/visionserve/internal/app/apptest"
	"github.com/visionserve/visionserve/internal/config"
	"github.com/visionserve/visionserve/internal/gallery/pgtest"
	"github.com/visionserve/visionserve/internal/httpapi"
	"github.com/visionserve/visionserve/internal/ocreval"
	"github.com/visionserve/visionserve/internal/review"
	"github.com/visionserve/visionserve/internal/review/reviewtest"
	"github.com/visionserve/visionserve/internal/testenv"
)

// consoleServer runs a server with reviews on and authentication on, and
// returns it with keys by name: reader (infer), reviewer (infer and
// reviews:write), both of tenant acme, and other (both scopes, tenant
// globex).
func consoleServer(t *testing.T, mutate func(*config.Config)) (*apptest.Server, map[string]string) {
	t.Helper()
	withKeys, keys := apptest.WithKeys(t,
		apptest.Key{Name: "reader", Tenant: "acme", Scopes: []string{"infer"}},
		apptest.Key{Name: "reviewer", Tenant: "acme", Scopes: []string{"infer", "reviews:write"}},
		apptest.Key{Name: "other", Tenant: "globex", Scopes: []string{"infer", "reviews:write"}},
	)
	dir := t.TempDir()
	srv := apptest.Start(t, func(c *config.Config) {
		withKeys(c)
		c.Reviews.Path = filepath.Join(dir, "reviews.db")
		if mutate != nil {
			mutate(c)
		}
	})
	return srv, keys
}

// rawGet GETs url without a credential and without checking the answer
// against openapi.json (which documents /ui/ but not each console file).
func rawGet(t *testing.T, url string) (int, http.Header, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// specRouter finds openapi.json's operations, whatever the host.
var specRouter = sync.OnceValues(func() (routers.Router, error) {
	doc, err := openapi3.NewLoader().LoadFromData(httpapi.OpenAPI())
	if err != nil {
		return nil, err
	}
	doc.Servers = nil
	return gorillamux.NewRouter(doc)
})

// call sends a request with key and returns the status and body, having
// checked the request and the answer against openapi.json.
func call(t *testing.T, method, url, key, ct string, body []byte) (int, http.Header, []byte) {
	t.Helper()
	router, err := specRouter()
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	validate(t, router, req, resp, out)
	return resp.StatusCode, resp.Header, out
}

func phototest(t *testing.T) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testenv.Shared(t, "data/ocr/pages"), "phototest.tif"))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// The review loop over HTTP with authentication on: a line of a TIFF page
// is corrected, stored with its image cut by the server, listed, exported
// in the layout calibrate reads and deleted; the scopes and tenants hold.
func TestIntegrationReviews(t *testing.T) {
	srv, keys := consoleServer(t, nil)
	tif := phototest(t)
	code, _, body := call(t, "POST", srv.URL+"/v1/ocr", keys["reader"], "image/tiff", tif)
	if code != 200 {
		t.Fatalf("ocr: %d %s", code, body)
	}
	var res struct {
		Model struct{ Name, Version string }
		Pages []struct {
			Width, Height int
			Lines         []struct {
				Text       string
				Confidence float64
				Review     string
				Box        [4][2]float64
			}
		}
	}
	if err := json.Unmarshal(body, &res); err != nil || len(res.Pages) != 1 || len(res.Pages[0].Lines) == 0 {
		t.Fatalf("ocr result %s: %v", body, err)
	}
	line := res.Pages[0].Lines[0]
	req, _ := json.Marshal(map[string]any{
		"image": tif, "content_type": "image/tiff", "corrected": "This is a lot of 12 point text to test the",
		"text": line.Text, "confidence": line.Confidence, "review": line.Review,
		"model":  map[string]string{"name": res.Model.Name, "version": res.Model.Version},
		"source": map[string]any{"name": "phototest.tif", "page": 0, "box": line.Box},
	})
	if code, _, body := call(t, "POST", srv.URL+"/v1/reviews", keys["reader"], "application/json", req); code != 403 {
		t.Fatalf("a key without reviews:write stored a review: %d %s", code, body)
	}
	code, hdr, body := call(t, "POST", srv.URL+"/v1/reviews", keys["reviewer"], "application/json", req)
	if code != 201 {
		t.Fatalf("create: %d %s", code, body)
	}
	var rv struct {
		ID, Author, Corrected string
		Width, Height         int
		Links                 struct{ Self, Image string }
	}
	if err := json.Unmarshal(body, &rv); err != nil || hdr.Get("Location") != rv.Links.Self || rv.Author != "key:reviewer" {
		t.Fatalf("created %s (%v), Location %q", body, err, hdr.Get("Location"))
	}
	// The line image is the line's box plus its margin, not the page.
	bw, bh := line.Box[2][0]-line.Box[0][0], line.Box[2][1]-line.Box[0][1]
	if float64(rv.Width) < bw || float64(rv.Width) > bw+bh || float64(rv.Height) < bh || float64(rv.Height) > 2*bh || rv.Width >= res.Pages[0].Width {
		t.Errorf("line image %dx%d for a %gx%g box", rv.Width, rv.Height, bw, bh)
	}
	code, _, img := call(t, "GET", srv.URL+rv.Links.Image, keys["reader"], "", nil)
	if p, err := png.Decode(bytes.NewReader(img)); code != 200 || err != nil || p.Bounds().Dx() != rv.Width {
		t.Fatalf("image: %d %v", code, err)
	}

	// Tenants never meet.
	if code, _, _ := call(t, "GET", srv.URL+rv.Links.Self, keys["other"], "", nil); code != 404 {
		t.Errorf("another tenant's review: %d", code)
	}
	code, _, body = call(t, "GET", srv.URL+"/v1/reviews", keys["other"], "", nil)
	if code != 200 || !strings.Contains(string(body), `"reviews":[]`) {
		t.Errorf("another tenant's list: %d %s", code, body)
	}
	code, _, body = call(t, "GET", srv.URL+"/v1/reviews?page_size=10", keys["reader"], "", nil)
	if code != 200 || !strings.Contains(string(body), rv.ID) {
		t.Errorf("list: %d %s", code, body)
	}

	// The export is what calibrate reads.
	code, hdr, archive := call(t, "GET", srv.URL+"/v1/reviews/export?model="+res.Model.Name, keys["reader"], "", nil)
	if code != 200 || hdr.Get("Content-Type") != "application/x-tar" {
		t.Fatalf("export: %d %s", code, hdr.Get("Content-Type"))
	}
	dir := t.TempDir()
	reviewtest.Unpack(t, "tar", archive, dir)
	samples, err := ocreval.LoadLines(dir)
	if err != nil || len(samples) != 1 || samples[0].Truth != rv.Corrected {
		t.Fatalf("export read back: %+v %v", samples, err)
	}
	if code, _, _ := call(t, "GET", srv.URL+"/v1/reviews/export?format=rar", keys["reader"], "", nil); code != 400 {
		t.Errorf("format=rar: %d", code)
	}

	for _, tc := range []struct {
		body string
		want int
	}{
		{`{"image": "` + strings.Repeat("A", 8) + `", "corrected": "x"}`, 415}, // not an image
		{`{"corrected": "x"}`, 400},
		{`{"image": "aGk=", "corrected": "two\nlines"}`, 400},
		{`{"image": "aGk=", "corrected": "x", "extra": 1}`, 400},
		{`not json`, 400},
	} {
		if code, _, body := call(t, "POST", srv.URL+"/v1/reviews", keys["reviewer"], "application/json", []byte(tc.body)); code != tc.want {
			t.Errorf("%s: %d %s", tc.body, code, body)
		}
	}

	if code, _, _ := call(t, "DELETE", srv.URL+rv.Links.Self, keys["reader"], "", nil); code != 403 {
		t.Errorf("delete without reviews:write: %d", code)
	}
	if code, _, _ := call(t, "DELETE", srv.URL+rv.Links.Self, keys["other"], "", nil); code != 404 {
		t.Errorf("delete by another tenant: %d", code)
	}
	if code, _, _ := call(t, "DELETE", srv.URL+rv.Links.Self, keys["reviewer"], "", nil); code != 204 {
		t.Errorf("delete: %d", code)
	}
	if code, _, _ := call(t, "GET", srv.URL+rv.Links.Self, keys["reader"], "", nil); code != 404 {
		t.Errorf("after delete: %d", code)
	}
}

// whoami tells each credential its scopes and tenant and each listener's
// features; the preview is the page OCR read, in its coordinates.
func TestIntegrationWhoamiAndPreview(t *testing.T) {
	srv, keys := consoleServer(t, nil)
	var who struct {
		Principal struct {
			ID, Tenant string
			Scopes     []string
		}
		Authentication bool
		Listener       string
		Features       map[string]bool
		Formats        []struct {
			Name        string
			ContentType string `json:"content_type"`
		}
	}
	code, _, body := call(t, "GET", srv.URL+"/v1/whoami", keys["reader"], "", nil)
	if code != 200 || json.Unmarshal(body, &who) != nil {
		t.Fatalf("whoami: %d %s", code, body)
	}
	if who.Principal.ID != "key:reader" || who.Principal.Tenant != "acme" || strings.Join(who.Principal.Scopes, ",") != "infer" ||
		!who.Authentication || who.Listener != "public" || !who.Features["ocr"] || !who.Features["reviews"] || who.Features["models"] || who.Features["faces"] {
		t.Errorf("whoami %+v", who)
	}
	names := []string{}
	for _, f := range who.Formats {
		names = append(names, f.Name)
	}
	if !strings.Contains(strings.Join(names, ","), "alto,hocr,json") {
		t.Errorf("formats %v", names)
	}
	// An admin key holds no public scope, yet may ask who it is.
	code, _, body = call(t, "GET", srv.URL+"/v1/whoami", srv.AdminKey, "", nil)
	if code != 200 || !strings.Contains(string(body), `"scopes":["models:admin"]`) {
		t.Errorf("whoami of the admin key: %d %s", code, body)
	}
	code, _, body = call(t, "GET", srv.AdminURL+"/v1/whoami", srv.AdminKey, "", nil)
	if code != 200 || json.Unmarshal(body, &who) != nil || who.Listener != "admin" || !who.Features["models"] || who.Features["ocr"] {
		t.Errorf("admin listener's whoami: %d %s", code, body)
	}
	if code, _, _ := call(t, "GET", srv.URL+"/v1/whoami", "", "", nil); code != 401 {
		t.Errorf("whoami without a credential: %d", code)
	}

	tif := phototest(t)
	code, hdr, body := call(t, "POST", srv.URL+"/v1/ocr/preview", keys["reader"], "image/tiff", tif)
	if code != 200 || hdr.Get("Content-Type") != "image/png" || hdr.Get("X-Page-Count") != "1" {
		t.Fatalf("preview: %d %v %s", code, hdr, body)
	}
	img, err := png.Decode(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	_, _, ocrBody := call(t, "POST", srv.URL+"/v1/ocr", keys["reader"], "image/tiff", tif)
	var res struct{ Pages []struct{ Width, Height int } }
	if json.Unmarshal(ocrBody, &res) != nil || len(res.Pages) != 1 || img.Bounds().Dx() != res.Pages[0].Width || img.Bounds().Dy() != res.Pages[0].Height {
		t.Errorf("preview %v, OCR page %+v", img.Bounds(), res.Pages)
	}
	if code, _, _ := call(t, "POST", srv.URL+"/v1/ocr/preview?page=1", keys["reader"], "image/tiff", tif); code != 400 {
		t.Errorf("page 1 of a 1-page TIFF: %d", code)
	}
	if code, _, _ := call(t, "POST", srv.URL+"/v1/ocr/preview", "", "image/tiff", tif); code != 401 {
		t.Errorf("preview without a credential: %d", code)
	}
}

// The console's files: no credential needed, a strict policy on every
// answer, revalidation by ETag; off with ui.enabled: false.
func TestIntegrationConsoleFiles(t *testing.T) {
	srv, _ := consoleServer(t, nil)
	for _, base := range []string{srv.URL, srv.AdminURL} {
		code, hdr, body := rawGet(t, base+"/ui/")
		if code != 200 || !strings.Contains(string(body), `<script type="module" src="js/app.js">`) {
			t.Fatalf("%s/ui/: %d", base, code)
		}
		if csp := hdr.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "default-src 'none'") {
			t.Errorf("CSP %q", csp)
		}
		if hdr.Get("Set-Cookie") != "" || hdr.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("headers %v", hdr)
		}
		req, _ := http.NewRequest("GET", base+"/ui/js/app.js", nil)
		req.Header.Set("If-None-Match", func() string { _, h, _ := rawGet(t, base+"/ui/js/app.js"); return h.Get("ETag") }())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotModified {
			t.Errorf("revalidation: %d", resp.StatusCode)
		}
		if code, hdr, _ := rawGet(t, base+"/ui/app.css"); code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/css") {
			t.Errorf("app.css: %d %s", code, hdr.Get("Content-Type"))
		}
		if code, _, _ := rawGet(t, base+"/ui/nope.js"); code != 404 {
			t.Errorf("missing file: %d", code)
		}
		if code, loc := home(t, "GET", base); code != http.StatusFound || loc != "/ui/" {
			t.Errorf("GET %s/: %d to %q, want 302 to the console", base, code, loc)
		}
		if code, _ := home(t, "POST", base); code == http.StatusFound {
			t.Errorf("POST %s/ was redirected", base)
		}
	}
	off, _ := consoleServer(t, func(c *config.Config) { c.UI.Enabled = false })
	if code, _, body := rawGet(t, off.URL+"/ui/"); code != 404 || !strings.Contains(string(body), "ui.enabled") {
		t.Errorf("console off: %d %s", code, body)
	}
	if code, _ := home(t, "GET", off.URL); code != 404 {
		t.Errorf("GET / with the console off: %d, want 404", code)
	}
}

// home requests base's "/" without following a redirect, and returns the
// status and Location.
func home(t *testing.T, method, base string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, base+"/", nil)
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Location")
}

// failingStore holds one review and fails after handing it out, as a
// database that goes away part-way through an export.
type failingStore struct{ review.Store }

func (failingStore) Each(_ context.Context, _ string, fn func(review.Review) error) error {
	if err := fn(review.Review{ID: "rv_00000000000000000000000a", Corrected: "x", Image: []byte("png")}); err != nil {
		return err
	}
	return review.ErrUnavailable
}

// An export that fails part-way aborts the connection: the client sees a
// broken transfer, never a shorter archive that looks whole.
func TestReviewExportCutShortAborts(t *testing.T) {
	s := httpapi.New(httpapi.Config{Reviews: review.NewService(failingStore{}, review.Config{}, nil, nil), Gatherer: prometheus.NewRegistry()})
	srv := httptest.NewServer(s)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/v1/reviews/export")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Fatalf("status %d and a clean end: the cut-off archive looks complete", resp.StatusCode)
	}
}

// With reviews.store: postgres and no connection string of its own, the
// server keeps reviews in the galleries' database.
func TestIntegrationReviewsPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	pg := pgtest.Start(t)
	srv, keys := consoleServer(t, func(c *config.Config) {
		c.Reviews.Path = ""
		c.Reviews.Store = config.StorePostgres
		c.Face.Gallery.Postgres = pg.DSN
	})
	req, _ := json.Marshal(map[string]any{"image": lineImage(t), "corrected": "a line", "model": map[string]string{"name": "ocr-eng", "version": "1"}})
	if code, _, body := call(t, "POST", srv.URL+"/v1/reviews", keys["reviewer"], "application/json", req); code != 201 {
		t.Fatalf("create: %d %s", code, body)
	}
	code, _, archive := call(t, "GET", srv.URL+"/v1/reviews/export?format=zip", keys["reader"], "", nil)
	if code != 200 {
		t.Fatalf("export: %d", code)
	}
	zr, err := zip.NewReader(bytes.NewReader(archive), int64(len(archive)))
	if err != nil || len(zr.File) != 3 {
		t.Fatalf("export: %v, %d entries", err, len(zr.File))
	}
	db, err := pgx.Connect(context.Background(), pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())
	var n int
	if err := db.QueryRow(context.Background(), `SELECT count(*) FROM visionserve_reviews WHERE tenant = 'acme'`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("rows in PostgreSQL: %d %v", n, err)
	}
}
