package cli

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func tarOf(t *testing.T, entries ...tar.Header) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range entries {
		body := []byte(strings.Repeat("x", int(h.Size)))
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write(body)
		}
	}
	tw.Close()
	return buf.Bytes()
}

// A review export is unpacked as plain files in the directory only: a
// hostile or oversized archive is an error, and nothing lands elsewhere.
func TestFetchReviews(t *testing.T) {
	var zipped bytes.Buffer
	zw := zip.NewWriter(&zipped)
	for _, n := range []string{"rv_1.png", "rv_1.gt.txt"} {
		w, _ := zw.Create(n)
		w.Write([]byte("data"))
	}
	zw.Close()
	var gotAuth string
	exports := map[string]struct {
		ct   string
		body []byte
	}{
		"/good.tar":    {"application/x-tar", tarOf(t, tar.Header{Name: "rv_1.png", Size: 4}, tar.Header{Name: "rv_1.gt.txt", Size: 4})},
		"/good.zip":    {"application/zip", zipped.Bytes()},
		"/escape.tar":  {"application/x-tar", tarOf(t, tar.Header{Name: "../escaped.gt.txt", Size: 4})},
		"/abs.tar":     {"application/x-tar", tarOf(t, tar.Header{Name: "/tmp/abs.gt.txt", Size: 4})},
		"/subdir.tar":  {"application/x-tar", tarOf(t, tar.Header{Name: "a/b.gt.txt", Size: 4})},
		"/symlink.tar": {"application/x-tar", tarOf(t, tar.Header{Name: "rv_1.png", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"})},
		"/big.tar":     {"application/x-tar", tarOf(t, tar.Header{Name: "rv_1.png", Size: 20000})},
		"/twice.tar":   {"application/x-tar", tarOf(t, tar.Header{Name: "rv_1.png", Size: 4}, tar.Header{Name: "rv_1.png", Size: 4})},
		"/html":        {"text/html", []byte("<html>")},
		"/cut.tar":     {"application/x-tar", tarOf(t, tar.Header{Name: "rv_1.png", Size: 4}, tar.Header{Name: "rv_1.gt.txt", Size: 4})[:1024]},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth = r.Header.Get("Authorization")
		if r.URL.Path == "/denied" {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(401)
			w.Write([]byte(`{"detail":"unauthenticated: missing"}`))
			return
		}
		e, ok := exports[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", e.ct)
		w.Write(e.body)
		if r.URL.Path == "/cut.tar" {
			// What the server does when an export fails part-way.
			http.NewResponseController(w).Flush()
			panic(http.ErrAbortHandler)
		}
	}))
	defer srv.Close()
	t.Setenv(EnvAPIKey, "vsk_test")
	lim := reviewLimits{Bytes: 10000, Entries: 10}
	for path, want := range map[string]string{
		"/good.tar":    "",
		"/good.zip":    "",
		"/escape.tar":  "plain file names",
		"/abs.tar":     "plain file names",
		"/subdir.tar":  "plain file names",
		"/symlink.tar": "not a plain file",
		"/big.tar":     "larger than --max-bytes",
		"/twice.tar":   "exists",
		"/html":        "not a tar or zip",
		"/cut.tar":     "unexpected EOF",
		"/denied":      "VISIONSERVE_API_KEY",
	} {
		t.Run(path, func(t *testing.T) {
			parent := t.TempDir()
			dir := filepath.Join(parent, "export")
			os.Mkdir(dir, 0o755)
			n, err := fetchReviews(context.Background(), srv.URL+path, dir, lim)
			if want == "" {
				if err != nil || n != 2 {
					t.Fatalf("%d files, %v", n, err)
				}
				if gotAuth != "Bearer vsk_test" {
					t.Errorf("Authorization %q", gotAuth)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("err %v, want %q", err, want)
			}
			entries, _ := os.ReadDir(parent)
			if len(entries) != 1 {
				t.Errorf("something was written beside the export directory: %v", entries)
			}
		})
	}
}

func TestExportURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://h:8080":                             "http://h:8080/v1/reviews/export?model=ocr-eng",
		"http://h:8080/":                            "http://h:8080/v1/reviews/export?model=ocr-eng",
		"https://h/v1/reviews/export?format=zip":    "https://h/v1/reviews/export?format=zip&model=ocr-eng",
		"https://h/v1/reviews/export?model=ocr-deu": "https://h/v1/reviews/export?model=ocr-deu",
	} {
		if got, err := exportURL(in, "ocr-eng"); err != nil || got != want {
			t.Errorf("%s: %s %v, want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "h:8080", "ftp://h/x", "file:///tmp/x.tar"} {
		if _, err := exportURL(bad, "m"); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// calibrate takes exactly one of --data and --reviews.
func TestCalibrateSources(t *testing.T) {
	for _, args := range [][]string{{}, {"--data", "d", "--reviews", "http://h"}} {
		var out, errb bytes.Buffer
		if code := Main(context.Background(), slices.Concat([]string{"calibrate"}, args), &out, &errb); code != 2 {
			t.Errorf("%v: exit %d", args, code)
		}
	}
}
