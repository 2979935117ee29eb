package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/visionserve/visionserve/internal/ocr"
	"github.com/visionserve/visionserve/internal/ocr/ppocr"
	"github.com/visionserve/visionserve/internal/ocreval"
	"github.com/visionserve/visionserve/internal/testenv"
)

// startDefaults publishes the default packages with `model bootstrap` into
// a new home and serves them with the default configuration, once probe
// (an image) reads with lang=chi_sim.
func startDefaults(t *testing.T, probe string) *server {
	t.Helper()
	if _, err := ppocr.V4ModelsDir(); errors.Is(err, ppocr.ErrV4ModelsNotFound) {
		testenv.Missing(t, err.Error())
	}
	home := t.TempDir()
	out, errOut, code := runCLI(t, "model", "bootstrap", "--home", home)
	if code != 0 || !strings.Contains(out, "published ocr-zh version 1") || !strings.Contains(out, "published ocr-chi-sim version 1") {
		t.Fatalf("bootstrap: exit %d\n%s%s", code, out, errOut)
	}
	s := startServer(t, "--models", filepath.Join(home, "models"), "--trust-key", filepath.Join(home, "keys", "public.pem"))
	// Readiness is the default model's; wait for ocr-zh too.
	deadline := time.Now().Add(3 * time.Minute)
	for {
		code, body, err := postFile(http.DefaultClient, s.url+"/v1/ocr?lang=chi_sim", probe)
		switch {
		case err == nil && code == http.StatusOK:
			return s
		case err == nil && code != http.StatusServiceUnavailable:
			t.Fatalf("lang=chi_sim: status %d: %s", code, body)
		case time.Now().After(deadline):
			t.Fatalf("ocr-zh never became ready (%v):\n%s", err, s.logs.String())
		}
		time.Sleep(time.Second)
	}
}

// postAll posts every image to url with as many requests in flight as
// there are CPUs and returns the results in order.
func postAll(t *testing.T, url string, images []string) []ocr.Result {
	t.Helper()
	out := make([]ocr.Result, len(images))
	var wg sync.WaitGroup
	var mu sync.Mutex
	sem := make(chan struct{}, runtime.NumCPU())
	for i, img := range images {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			code, body, err := postFile(http.DefaultClient, url, img)
			if err == nil && code != 200 {
				err = fmt.Errorf("status %d: %s", code, body)
			}
			if err == nil {
				err = json.Unmarshal(body, &out[i])
			}
			if err != nil {
				mu.Lock()
				t.Errorf("%s: %v", img, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return out
}

// Must show (issue 15), over HTTP with the real models and the defaults
// of a bootstrapped repository: zh-lines with lang=chi_sim at CER <= 2%
// (its dates, amounts and numbers too), zh-pages with lang=auto (OSD sees
// Han, ocr.scripts and ocr.languages pick ocr-zh) at CER <= 3%.
func TestE2EChinese(t *testing.T) {
	if testing.Short() {
		t.Skip("315 Chinese images through the server; skipped with -short")
	}
	dir := testenv.Shared(t, "data/ocr")
	lines, err := ocreval.LoadLines(filepath.Join(dir, "zh-lines"))
	if err != nil {
		t.Fatal(err)
	}
	pages, err := ppocr.LoadPages(filepath.Join(dir, "zh-pages"))
	if err != nil {
		t.Fatal(err)
	}
	digits := map[string]bool{}
	meta, err := os.ReadFile(filepath.Join(dir, "zh-lines", "meta.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(meta)), "\n") {
		var m struct{ File, Kind string }
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		digits[m.File] = m.Kind == "digits"
	}
	s := startDefaults(t, lines[0].Image)

	images := make([]string, len(lines))
	for i, l := range lines {
		images[i] = l.Image
	}
	all, num := ocreval.Score{Norm: ocreval.NormalizeNoSpace}, ocreval.Score{Norm: ocreval.NormalizeNoSpace}
	for i, res := range postAll(t, s.url+"/v1/ocr?lang=chi_sim", images) {
		if res.Model.Name != "ocr-zh" {
			t.Fatalf("%s read by %+v, want ocr-zh", images[i], res.Model)
		}
		all.Add(res.Text, lines[i].Truth)
		if digits[strings.TrimSuffix(filepath.Base(images[i]), ".png")] {
			num.Add(res.Text, lines[i].Truth)
		}
	}
	images = images[:0]
	for _, p := range pages {
		images = append(images, p.Image)
	}
	paged := ocreval.Score{Norm: ocreval.NormalizeNoSpace}
	for i, res := range postAll(t, s.url+"/v1/ocr?lang=auto", images) {
		if res.Model.Name != "ocr-zh" || res.Lang != "chi_sim" {
			t.Errorf("%s: lang=auto chose %q (script %q), read by %s; want chi_sim, ocr-zh", images[i], res.Lang, res.Script, res.Model.Name)
		}
		paged.Add(res.Text, pages[i].Truth)
	}
	t.Logf("zh-lines (lang=chi_sim): %s; of them digits: %s; zh-pages (lang=auto): %s", all, num, paged)
	if all.Samples != 300 || num.Samples != 35 || paged.Samples != 15 {
		t.Errorf("scored %d lines (%d digits), %d pages; want 300 (35), 15", all.Samples, num.Samples, paged.Samples)
	}
	for name, c := range map[string]struct {
		s   ocreval.Score
		max float64
	}{"zh-lines": {all, 0.02}, "digit lines": {num, 0.02}, "zh-pages": {paged, 0.03}} {
		if c.s.CER() > c.max {
			t.Errorf("%s: CER %.2f%%, want at most %.0f%%", name, 100*c.s.CER(), 100*c.max)
		}
	}
}
