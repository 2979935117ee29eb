package ui_test

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"golang.org/x/image/tiff"

	"github.com/visionserve/visionserve/internal/app/apptest"
	"github.com/visionserve/visionserve/internal/cli"
	"github.com/visionserve/visionserve/internal/config"
	"github.com/visionserve/visionserve/internal/jobs/jobstest"
	"github.com/visionserve/visionserve/internal/modelrepo"
	"github.com/visionserve/visionserve/internal/modelrepo/manifest"
	"github.com/visionserve/visionserve/internal/modelrepo/repotest"
	"github.com/visionserve/visionserve/internal/review/reviewtest"
	"github.com/visionserve/visionserve/internal/testenv"
	"github.com/visionserve/visionserve/internal/ui"
	"github.com/visionserve/visionserve/internal/ui/uitest"
)

// js quotes s as a JavaScript string literal.
func js(s string) string { return fmt.Sprintf("%q", s) }

// signIn enters a credential and waits until the console shows who it is.
func signIn(b *uitest.Browser, key, id string) {
	b.Do("entering the credential",
		chromedp.SetValue(chromedp.CSS("#credential"), key),
		chromedp.Click(chromedp.CSS("#signin button[type=submit]")))
	b.WaitFor("the console to show "+id, `document.querySelector('#who').textContent.includes(`+js("as "+id)+`)`)
}

// reason is the text of the reason shown inside a fieldset (empty when it is
// enabled).
func reason(b *uitest.Browser, fieldset string) string {
	return uitest.Eval[string](b, `(() => { const f = document.querySelector(`+js(fieldset)+`);
		const r = f.querySelector(':scope > .reason'); return f.disabled && r && !r.hidden ? r.textContent : ''; })()`)
}

func clickTab(b *uitest.Browser, name string) {
	b.Do("opening the "+name+" tab", chromedp.Click(chromedp.CSS("#tab-"+name)))
	b.WaitFor("the "+name+" panel", `!document.querySelector('#`+name+`').hidden`)
}

// Must show: with authentication on, a page is read (phototest.tif: 8
// line boxes), the review queue is stepped with a line corrected, the
// corrections are exported from the console and `visionserve calibrate`
// fits on the export (downloaded, and fetched with --reviews); a key
// without reviews:write sees the queue disabled with the reason. Axe finds
// no serious or critical violation and Tab reaches every control.
func TestE2EConsoleOCRReview(t *testing.T) {
	tif := filepath.Join(testenv.Shared(t, "data/ocr/pages"), "phototest.tif")
	b := uitest.Start(t)
	withKeys, keys := apptest.WithKeys(t,
		apptest.Key{Name: "reviewer", Scopes: []string{"infer", "reviews:write"}},
		apptest.Key{Name: "reader", Scopes: []string{"infer"}},
	)
	store := t.TempDir()
	srv := apptest.Start(t, func(c *config.Config) {
		withKeys(c)
		c.Reviews.Path = filepath.Join(store, "reviews.db")
		// A stricter policy than the default, so that some of the clean
		// page's lines are tiered verify.
		c.OCR.Review.Accept = 0.95
	})
	t.Logf("embedded console: %d bytes", ui.New().Size())

	b.Do("opening the console", chromedp.Navigate(srv.URL+"/ui/"))
	b.WaitFor("the console to ask for a credential", `document.querySelector('#who').textContent.includes('needs a credential')`)
	t.Logf("first contentful paint: %.0f ms", b.FirstPaint())
	if r := reason(b, "#ocr-input"); !strings.Contains(r, "Enter an API key") {
		t.Errorf("without a credential, OCR says %q", r)
	}
	b.Screenshot("signed-out")

	signIn(b, keys["reviewer"], "key:reviewer")
	b.Axe("signed in")

	b.Do("choosing phototest.tif", chromedp.SetUploadFiles(chromedp.CSS("#ocr-file"), []string{tif}))
	b.WaitFor("8 line boxes", `document.querySelectorAll('#quads polygon.line').length === 8`)
	b.WaitFor("the page image", `document.querySelector('#page-img').naturalWidth > 0`)
	b.Screenshot("phototest")

	// The list is sorted by confidence, least first.
	confs := uitest.Eval[[]float64](b, `[...document.querySelectorAll('#lines .swatch')].map(s => Number(s.dataset.conf))`)
	if len(confs) != 8 || !slices.IsSorted(confs) {
		t.Errorf("line confidences %v: want 8, ascending", confs)
	}
	// Hovering a box shows its words' confidences.
	pt := uitest.Eval[[]float64](b, `(() => { const r = document.querySelector('#quads polygon.line').getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()`)
	b.Do("hovering a line box", chromedp.MouseEvent(input.DispatchMouseEventTypeMouseMoved, pt[0], pt[1]))
	b.WaitFor("the word tooltip", `!document.querySelector('#tooltip').hidden && document.querySelector('#tooltip li') && document.querySelector('#tooltip').textContent.includes('%')`)
	b.Screenshot("hover")
	b.Do("moving away", chromedp.MouseEvent(input.DispatchMouseEventTypeMouseMoved, 5, 5))

	// The review queue holds the lines tiered verify or review ...
	doubtful := uitest.Eval[int](b, `[...document.querySelectorAll('#lines td.tier')].filter(td => td.textContent !== 'accept').length`)
	if doubtful == 0 || doubtful == 8 {
		t.Fatalf("%d of 8 lines below accept: the policy no longer splits the page", doubtful)
	}
	b.Do("starting the review queue", chromedp.Click(chromedp.CSS("#queue-start")))
	b.WaitFor("the queue of doubtful lines", `document.querySelector('#queue-position').textContent.startsWith(`+js(fmt.Sprintf("Line 1 of %d", doubtful))+`)`)
	b.Do("stopping it", chromedp.Click(chromedp.CSS("#queue-stop")))
	// ... and with accepted lines, every line: the first two corrected,
	// the rest confirmed.
	b.Do("starting the review queue of every line",
		chromedp.Click(chromedp.CSS("#queue-accepted")),
		chromedp.Click(chromedp.CSS("#queue-start")))
	b.WaitFor("the queue", `!document.querySelector('#queue').hidden`)
	b.Axe("review queue")
	var corrected []string
	for i := range 8 {
		b.WaitFor(fmt.Sprintf("queue line %d", i+1), `document.querySelector('#queue-position').textContent.startsWith(`+js(fmt.Sprintf("Line %d of 8", i+1))+`)`)
		text := uitest.Eval[string](b, `document.querySelector('#queue-text').textContent`)
		if i < 2 {
			words := strings.Fields(text)
			words[0] = "Z" + words[0]
			fixed := strings.Join(words, " ")
			corrected = append(corrected, fixed)
			b.Do("typing a correction", chromedp.Clear(chromedp.CSS("#queue-input")), chromedp.SendKeys(chromedp.CSS("#queue-input"), fixed))
			if i == 0 {
				b.Screenshot("correcting")
			}
		}
		b.Do("saving with Enter", chromedp.KeyEvent(kb.Enter))
		b.WaitFor("the save", `document.querySelector('#queue-status').textContent.includes('saved')`)
	}
	b.WaitFor("the end of the queue", `document.querySelector('#queue-status').textContent.includes('Review queue done: 8 line(s) saved')`)
	b.KeyboardReach("OCR result")
	b.Screenshot("queue-done")

	clickTab(b, "reviews")
	b.WaitFor("8 stored reviews", `document.querySelectorAll('#review-list tbody tr').length === 8`)
	for _, c := range corrected {
		b.WaitFor("the correction in the list", `document.querySelector('#review-list').textContent.includes(`+js(c)+`)`)
	}
	b.WaitFor("the line images", `[...document.querySelectorAll('#review-list img')].every(i => i.naturalWidth > 0)`)
	b.Axe("reviews")
	b.KeyboardReach("reviews")
	b.Screenshot("reviews")

	// Export from the console, as a user would, and fit on it.
	downloads := filepath.Join(b.Artifacts, "downloads")
	if err := os.MkdirAll(downloads, 0o755); err != nil {
		t.Fatal(err)
	}
	b.DownloadsTo(downloads)
	b.Do("exporting", chromedp.Click(chromedp.CSS("#export-tar")))
	b.WaitFile(filepath.Join(downloads, "reviews.tar"))
	data := t.TempDir()
	archive, err := os.ReadFile(filepath.Join(downloads, "reviews.tar"))
	if err != nil {
		t.Fatal(err)
	}
	reviewtest.Unpack(t, "tar", archive, data)
	out := calibrate(t, "--data", data, "--folds", "2")
	if !strings.Contains(out, "8 samples") || !strings.Contains(out, "calibration: [") || !strings.Contains(out, `{"calibration":[[`) || !strings.Contains(out, `"lang":"eng"}`) {
		t.Errorf("calibrate on the export:\n%s", out)
	}
	t.Setenv(cli.EnvAPIKey, keys["reader"])
	if out := calibrate(t, "--reviews", srv.URL, "--folds", "2"); !strings.Contains(out, "8 samples") {
		t.Errorf("calibrate --reviews:\n%s", out)
	}

	// A key without reviews:write: the queue is off, with the reason.
	signIn(b, keys["reader"], "key:reader")
	clickTab(b, "ocr")
	if r := reason(b, "#queue-controls"); !strings.Contains(r, "Needs the reviews:write scope") || !strings.Contains(r, "key:reader") {
		t.Errorf("the reader's review queue says %q", r)
	}
	if r := reason(b, "#ocr-input"); r != "" {
		t.Errorf("the reader may read pages, but OCR says %q", r)
	}
	if r := reason(b, "#galleries-read"); !strings.Contains(r, "Face recognition is not enabled") {
		t.Errorf("faces say %q", r)
	}
	if r := reason(b, "#models-admin"); !strings.Contains(r, "admin listener") {
		t.Errorf("models say %q", r)
	}
	b.Screenshot("reader")
	if p := b.Problems(); len(p) > 0 {
		t.Errorf("the page reported problems:\n%s", strings.Join(p, "\n"))
	}
}

// calibrate runs `visionserve calibrate` in-process and returns its output.
func calibrate(t *testing.T, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := cli.Main(context.Background(), append([]string{"calibrate"}, args...), &stdout, &stderr); code != 0 {
		t.Fatalf("calibrate %v: exit %d\n%s%s", args, code, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// Must show: galleries and subjects with authentication on: a gallery is
// created, two subjects are enrolled by upload, an image is identified
// (boxes and names) and two images verified; a key without
// galleries:write sees the changes disabled with the reason.
func TestE2EConsoleFaces(t *testing.T) {
	faces := testenv.Shared(t, "data/face/openface-examples")
	withFace := apptest.WithFace(t)
	b := uitest.Start(t)
	withKeys, keys := apptest.WithKeys(t,
		apptest.Key{Name: "curator", Scopes: []string{"infer", "galleries:write"}},
		apptest.Key{Name: "viewer", Scopes: []string{"infer"}},
	)
	srv := apptest.Start(t, func(c *config.Config) {
		withFace(c)
		withKeys(c)
	})
	b.Do("opening the console", chromedp.Navigate(srv.URL+"/ui/#faces"))
	signIn(b, keys["curator"], "key:curator")
	b.WaitFor("the faces panel", `!document.querySelector('#faces').hidden`)

	b.Do("creating a gallery",
		chromedp.SetValue(chromedp.CSS("#gallery-name"), "staff"),
		chromedp.Click(chromedp.CSS("#gallery-create")))
	b.WaitFor("the new gallery", `document.querySelector('#gallery-select').value === 'staff'`)
	for _, s := range []string{"lennon", "clapton"} {
		b.Do("enrolling "+s,
			chromedp.SetValue(chromedp.CSS("#enroll-subject"), s),
			chromedp.SetUploadFiles(chromedp.CSS("#enroll-file"), []string{filepath.Join(faces, s+"-1.jpg")}),
			chromedp.Click(chromedp.CSS("#enroll")))
		b.WaitFor(s+" in the subject list", `document.querySelector('#subjects li[data-subject=`+js(s)+`]')`)
	}
	b.Do("identifying",
		chromedp.SetUploadFiles(chromedp.CSS("#identify-file"), []string{filepath.Join(faces, "lennon-2.jpg")}),
		chromedp.Click(chromedp.CSS("#identify")))
	b.WaitFor("a box and a name", `document.querySelectorAll('#identify-boxes rect.face.known').length >= 1 &&
		document.querySelector('#identify-result li').textContent.startsWith('Face 1: lennon')`)
	b.WaitFor("the image under the boxes", `document.querySelector('#identify-img').naturalWidth > 0`)
	b.Screenshot("identify")
	b.Do("verifying",
		chromedp.SetUploadFiles(chromedp.CSS("#verify-a"), []string{filepath.Join(faces, "clapton-1.jpg")}),
		chromedp.SetUploadFiles(chromedp.CSS("#verify-b"), []string{filepath.Join(faces, "clapton-2.jpg")}),
		chromedp.Click(chromedp.CSS("#verify")))
	b.WaitFor("the verdict", `document.querySelector('#faces-status').textContent.startsWith('Same person')`)
	b.Axe("faces")
	b.KeyboardReach("faces")
	b.Screenshot("verify")

	signIn(b, keys["viewer"], "key:viewer")
	if r := reason(b, "#galleries-write"); !strings.Contains(r, "Needs the galleries:write scope") {
		t.Errorf("the viewer's gallery changes say %q", r)
	}
	for _, f := range []string{"#galleries-read", "#identify-form", "#verify-form"} {
		if r := reason(b, f); r != "" {
			t.Errorf("the viewer may use %s, but it says %q", f, r)
		}
	}
	b.WaitFor("the subject delete buttons disabled", `[...document.querySelectorAll('#subjects button')].every(x => x.disabled)`)
	b.Screenshot("viewer")
	if p := b.Problems(); len(p) > 0 {
		t.Errorf("the page reported problems:\n%s", strings.Join(p, "\n"))
	}
}

// Must show: on the admin listener, with a models:admin key, the console
// lists the versions of a repository model, a traffic weight is changed
// there and the change arrives as a live event.
func TestE2EConsoleModels(t *testing.T) {
	tessdata := repotest.Tessdata(t)
	b := uitest.Start(t)
	root, key := t.TempDir(), repotest.NewKey(t)
	for v := 1; v <= 2; v++ {
		repotest.Publish(t, root, repotest.Spec{Name: "ocr-eng", Version: v, Kind: manifest.KindOCRTesseract,
			Runtime: map[string]any{"lang": "eng"}, Files: tessdata, Signer: key.Signer})
	}
	srv := apptest.Start(t, func(c *config.Config) {
		c.Server.Workers = 2
		c.Repository.Dir = root
		c.Repository.Trust.Keys = []string{key.PublicPath}
		c.Repository.Policy = modelrepo.Policy{Latest: 2}
	})
	for _, v := range []int{1, 2} {
		if err := waitReady(srv, v); err != nil {
			t.Fatal(err)
		}
	}

	// The public listener's console sends admins to the admin listener.
	b.Do("opening the public console", chromedp.Navigate(srv.URL+"/ui/#models"))
	signIn(b, srv.AdminKey, "key:apptest-admin")
	if r := reason(b, "#models-admin"); !strings.Contains(r, "admin listener only") {
		t.Errorf("the public listener's models say %q", r)
	}

	b.Do("opening the admin console", chromedp.Navigate(srv.AdminURL+"/ui/#models"))
	signIn(b, srv.AdminKey, "key:apptest-admin")
	b.WaitFor("both versions ready", `document.querySelectorAll('table[data-model="ocr-eng"] td.state-ready').length === 2`)
	b.WaitFor("the event stream", `document.querySelector('#events').dataset.connected === 'true'`)
	if r := reason(b, "#ocr-input"); !strings.Contains(r, "public listener") {
		t.Errorf("the admin listener's OCR says %q", r)
	}
	b.Do("setting weights 30/70",
		chromedp.SetValue(chromedp.CSS(`input.weight[data-version="1"]`), "30"),
		chromedp.SetValue(chromedp.CSS(`input.weight[data-version="2"]`), "70"),
		chromedp.Click(chromedp.CSS(`table[data-model="ocr-eng"] ~ button`)))
	b.WaitFor("the traffic event", `[...document.querySelectorAll('#events li[data-type="traffic"]')].some(li => li.textContent.includes('v1 30%, v2 70%'))`)
	b.WaitFor("the new shares in the table", `document.querySelector('table[data-model="ocr-eng"] tr[data-version="2"]').textContent.includes('70%')`)
	b.Axe("models")
	b.KeyboardReach("models")
	b.Screenshot("models")
	// The tabs move with the arrow keys too.
	b.Do("arrow keys on the tabs", chromedp.Focus(chromedp.CSS("#tab-models")), chromedp.KeyEvent(kb.ArrowLeft))
	b.WaitFor("the faces tab", `document.activeElement.id === 'tab-faces' && !document.querySelector('#faces').hidden`)
	if p := b.Problems(); len(p) > 0 {
		t.Errorf("the page reported problems:\n%s", strings.Join(p, "\n"))
	}
}

// waitReady waits until version v of ocr-eng is ready.
func waitReady(srv *apptest.Server, v int) error {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		for _, m := range srv.Repository().Models() {
			for _, vs := range m.Versions {
				if vs.Version == strconv.Itoa(v) && vs.State == modelrepo.StateReady {
					return nil
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("ocr-eng version %d not ready within 2 minutes", v)
}

// Jobs from the console: a PDF dropped on the OCR view is read as a job,
// its lines drawn over its page as the job read it, and a line reviewed
// (cut by the server from the rendered page); a job submitted from the Jobs view shows its
// progress and offers a download per output format, and a format the
// server's job results do not render yet is saved as JSON with a note.
func TestE2EConsoleJobs(t *testing.T) {
	page, err := os.ReadFile(filepath.Join(testenv.Shared(t, "data/ocr/pages"), "phototest.tif"))
	if err != nil {
		t.Fatal(err)
	}
	img, err := tiff.Decode(bytes.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	pdf := filepath.Join(t.TempDir(), "phototest.pdf")
	if err := os.WriteFile(pdf, jobstest.PDF([]image.Image{img}, 100), 0o644); err != nil {
		t.Fatal(err)
	}
	b := uitest.Start(t)
	withKeys, keys := apptest.WithKeys(t, apptest.Key{Name: "clerk", Scopes: []string{"infer", "reviews:write"}})
	jobsDir, store := t.TempDir(), t.TempDir()
	srv := apptest.Start(t, func(c *config.Config) {
		withKeys(c)
		c.Jobs.Dir = jobsDir
		c.Reviews.Path = filepath.Join(store, "reviews.db")
	})
	b.Do("opening the console", chromedp.Navigate(srv.URL+"/ui/"))
	signIn(b, keys["clerk"], "key:clerk")
	// A PDF is read as a job; its page is shown as the job read it (the
	// server renders it), so its lines can be reviewed like an image's.
	b.Do("choosing a PDF", chromedp.SetUploadFiles(chromedp.CSS("#ocr-file"), []string{pdf}))
	b.WaitFor("the PDF's 8 line boxes", `document.querySelectorAll('#quads polygon.line').length === 8`)
	b.WaitFor("the PDF page's image, in the boxes' coordinates", `(() => { const i = document.querySelector('#page-img');
		return !i.hidden && i.naturalWidth > 0 && i.naturalWidth === document.querySelector('#quads').viewBox.baseVal.width &&
			i.naturalHeight === document.querySelector('#quads').viewBox.baseVal.height; })()`)
	b.Screenshot("pdf")
	b.Do("reviewing the PDF's lines",
		chromedp.Click(chromedp.CSS("#queue-accepted")),
		chromedp.Click(chromedp.CSS("#queue-start")))
	b.WaitFor("the first queued line", `document.querySelector('#queue-position').textContent.startsWith('Line 1 of 8')`)
	text := uitest.Eval[string](b, `document.querySelector('#queue-text').textContent`)
	fixed := "Z" + text
	b.Do("typing a correction", chromedp.Clear(chromedp.CSS("#queue-input")), chromedp.SendKeys(chromedp.CSS("#queue-input"), fixed))
	b.Do("saving with Enter", chromedp.KeyEvent(kb.Enter))
	b.WaitFor("the save", `document.querySelector('#queue-status').textContent.includes('saved')`)
	b.Do("stopping the queue", chromedp.Click(chromedp.CSS("#queue-stop")))
	clickTab(b, "reviews")
	b.WaitFor("the PDF line's review, with its image", `document.querySelectorAll('#review-list tbody tr').length === 1 &&
		document.querySelector('#review-list').textContent.includes(`+js(fixed)+`) &&
		[...document.querySelectorAll('#review-list img')].every(i => i.naturalWidth > 0)`)
	// The line image is the line: about as tall as one line of the page
	// rendered at 300 dpi (phototest's lines are ~30 px at 100 dpi).
	if h := uitest.Eval[int](b, `document.querySelector('#review-list img').naturalHeight`); h < 40 || h > 300 {
		t.Errorf("the PDF line's image is %d px tall: not one line of the rendered page", h)
	}
	b.Screenshot("pdf-review")

	clickTab(b, "jobs")
	b.Do("submitting a job",
		chromedp.SetUploadFiles(chromedp.CSS("#job-files"), []string{filepath.Join(testenv.Shared(t, "data/ocr/pages"), "phototest.tif")}),
		chromedp.Click(chromedp.CSS("#job-submit")))
	b.WaitFor("the job to succeed", `document.querySelector('#job-list li[data-state="succeeded"]')`)
	if got := uitest.Eval[string](b, `document.querySelector('#job-list li progress').value + '/' + document.querySelector('#job-list li progress').max`); got != "1/1" {
		t.Errorf("progress %s", got)
	}
	names := uitest.Eval[[]string](b, `[...document.querySelectorAll('#job-list li button')].map(x => x.textContent)`)
	for _, f := range []string{"json", "text", "hocr", "alto", "page", "pdf"} {
		if !slices.Contains(names, "Download "+f) {
			t.Errorf("no download for %s among %v", f, names)
		}
	}
	downloads := filepath.Join(b.Artifacts, "downloads")
	if err := os.MkdirAll(downloads, 0o755); err != nil {
		t.Fatal(err)
	}
	b.DownloadsTo(downloads)
	id := uitest.Eval[string](b, `document.querySelector('#job-list li').dataset.job`)
	b.Do("downloading JSON", chromedp.Click(chromedp.Search(`//button[text()="Download json"]`)))
	b.WaitFile(filepath.Join(downloads, id+".json"))
	b.WaitFor("the JSON download's note", `document.querySelector('#job-list li .status').textContent.includes('.json')`)
	b.Do("downloading hOCR", chromedp.Click(chromedp.Search(`//button[text()="Download hocr"]`)))
	b.WaitFor("the hOCR answer", `document.querySelector('#job-list li .status').textContent.includes('hocr')`)
	if note := uitest.Eval[string](b, `document.querySelector('#job-list li .status').textContent`); strings.Contains(note, "not rendered as hocr") {
		t.Logf("job results are JSON only on this server: %s", note)
	} else {
		b.WaitFile(filepath.Join(downloads, id+".hocr"))
	}
	b.Axe("jobs")
	b.KeyboardReach("jobs")
	b.Screenshot("jobs")
	if p := b.Problems(); len(p) > 0 {
		t.Errorf("the page reported problems:\n%s", strings.Join(p, "\n"))
	}
}
