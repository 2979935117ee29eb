package jobs_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/visionserve/visionserve/internal/imageio"
	"github.com/visionserve/visionserve/internal/imageio/imagetest"
	"github.com/visionserve/visionserve/internal/jobs"
	"github.com/visionserve/visionserve/internal/jobs/jobstest"
	"github.com/visionserve/visionserve/internal/jobs/webhook"
	"github.com/visionserve/visionserve/internal/keys"
	"github.com/visionserve/visionserve/internal/ocr"
	"github.com/visionserve/visionserve/internal/testenv"
)

// fakeOCR "reads" each page as the hash of its input and page number, so
// tests can tell which input produced which page. gate, when set, is
// received from before each call, so a test controls progress.
type fakeOCR struct {
	calls atomic.Int64
	gate  chan struct{}
	fail  func(in ocr.Input) error
	// arrived, when set, is sent to as a call reaches the gate; canceled
	// counts the calls whose context ended there.
	arrived  chan struct{}
	canceled atomic.Int64
}

func (f *fakeOCR) Recognize(ctx context.Context, in ocr.Input, opt ocr.Options) (*ocr.Result, error) {
	if f.gate != nil {
		if f.arrived != nil {
			f.arrived <- struct{}{}
		}
		select {
		case <-f.gate:
		case <-ctx.Done():
			f.canceled.Add(1)
			return nil, ctx.Err()
		}
	}
	f.calls.Add(1)
	if f.fail != nil {
		if err := f.fail(in); err != nil {
			return nil, err
		}
	}
	doc, err := imageio.Open(in.Data, in.Declared, imageio.Limits{})
	if err != nil {
		return nil, err
	}
	res := &ocr.Result{Model: ocr.ModelRef{Name: "fake", Version: "1"}}
	for i, p := range doc.Pages {
		text := fmt.Sprintf("%s#%d", digest(in.Data), i)
		// One word over the page's top half, so formats have a box.
		box := ocr.RectQuad(image.Rect(0, 0, p.Width, max(p.Height/2, 1)))
		res.Pages = append(res.Pages, ocr.Page{Index: i, Width: p.Width, Height: p.Height, Confidence: 0.9,
			Lines: []ocr.Line{{Text: text, Confidence: 0.9, Review: ocr.TierAccept, Box: box, Words: []ocr.Word{{Text: text, Confidence: 0.9, Box: box}}}}})
	}
	return res, nil
}

func digest(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:4]) }

var ctx = context.Background()

type env struct {
	t   *testing.T
	dir string
	cfg jobs.Config
	ocr *fakeOCR
	now atomic.Int64
	// realTime makes the clock the wall clock (webhook receivers check
	// timestamps against theirs; retries wait for real).
	realTime atomic.Bool
	m        *jobs.Manager
	// renders counts work run through the Scheduler (PDF rasterisation).
	renders atomic.Int64
	metrics *jobs.Metrics
	// keys seal the store at rest (zero: in clear).
	keys keys.Config
}

func newEnv(t *testing.T, change func(*jobs.Config)) *env {
	t.Helper()
	return newSealedEnv(t, change, keys.Config{})
}

// newSealedEnv is newEnv with the store sealed by k.
func newSealedEnv(t *testing.T, change func(*jobs.Config), k keys.Config) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), ocr: &fakeOCR{}, keys: k}
	e.now.Store(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	e.cfg = jobs.DefaultConfig()
	e.cfg.Dir = e.dir
	e.cfg.Webhook.SecretEnv = ""
	e.cfg.Webhook.InitialBackoff = 5 * time.Millisecond
	e.cfg.Webhook.MaxBackoff = 20 * time.Millisecond
	e.cfg.Webhook.AllowPrivateNetworks = true
	if change != nil {
		change(&e.cfg)
	}
	e.open()
	return e
}

func (e *env) clock() time.Time {
	if e.realTime.Load() {
		return time.Now()
	}
	return time.Unix(0, e.now.Load())
}

func (e *env) open() {
	e.t.Helper()
	e.metrics = jobs.NewMetrics(prometheus.NewRegistry())
	held := runnerFunc(func(ctx context.Context, fn func(context.Context) error) error {
		e.renders.Add(1)
		return fn(ctx)
	})
	m, err := jobs.Open(jobs.Options{Config: e.cfg, OCR: e.ocr, Scheduler: held, Now: e.clock, Metrics: e.metrics, Version: "test", Keys: e.keys})
	if err != nil {
		e.t.Fatal(err)
	}
	e.m = m
	m.Start()
	e.t.Cleanup(func() { m.Close() })
}

func (e *env) restart() {
	e.t.Helper()
	if err := e.m.Close(); err != nil {
		e.t.Fatal(err)
	}
	e.open()
}

func (e *env) submit(owner string, sub *jobs.Submission) jobs.Status {
	e.t.Helper()
	st, created, err := e.m.Submit(ctx, jobs.Owner{ID: owner}, sub)
	if err != nil || !created {
		e.t.Fatalf("submit: created %v, %v", created, err)
	}
	return st
}

// wait polls until the job reaches a final state (reaching a state, not
// timing anything).
func (e *env) wait(owner, id string) jobs.Status {
	e.t.Helper()
	for i := 0; i < 20000; i++ {
		st, err := e.m.Get(ctx, owner, id)
		if err != nil {
			e.t.Fatal(err)
		}
		if st.State.Terminal() {
			return st
		}
		time.Sleep(time.Millisecond)
	}
	e.t.Fatalf("job %s did not finish", id)
	return jobs.Status{}
}

// waitPagesDone polls until n pages of the job have their result
// committed.
func (e *env) waitPagesDone(owner, id string, n int) {
	e.t.Helper()
	for {
		st, err := e.m.Get(ctx, owner, id)
		if err != nil {
			e.t.Fatal(err)
		}
		if st.Progress.PagesDone >= n {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

func png(t testing.TB, w, h int) []byte { return imagetest.Encode(t, "png", imagetest.Marked(w, h)) }

func inputs(data ...[]byte) []jobs.Input {
	var out []jobs.Input
	for _, d := range data {
		out = append(out, jobs.Input{Data: d, PDF: imageio.IsPDF(d)})
	}
	return out
}

// checkPages asserts every page appears once, in order, from the right
// input.
func checkPages(t *testing.T, res *jobs.Result, want []string) {
	t.Helper()
	if len(res.Pages) != len(want) {
		t.Fatalf("%d pages, want %d", len(res.Pages), len(want))
	}
	for i, p := range res.Pages {
		if p.Index != i {
			t.Fatalf("page %d has index %d", i, p.Index)
		}
		if p.Error != nil {
			t.Fatalf("page %d: %+v", i, p.Error)
		}
		if got := p.Page.Lines[0].Text; got != want[i] {
			t.Fatalf("page %d reads %q, want %q", i, got, want[i])
		}
	}
}

func TestImagesAndTIFF(t *testing.T) {
	e := newEnv(t, nil)
	a, b := png(t, 40, 30), png(t, 50, 30)
	tiff := imagetest.TIFF([]imagetest.TIFFPage{{Img: imagetest.Marked(20, 20)}, {Img: imagetest.Marked(30, 20)}}, false)
	st := e.submit("key:a", &jobs.Submission{Inputs: inputs(a, tiff, b)})
	if st.State != jobs.StateQueued || st.Progress.PagesTotal != 4 || !jobs.ValidID(st.ID) || st.Links.Result != "/v1/jobs/"+st.ID+"/result" {
		t.Fatalf("status %+v", st)
	}
	if st = e.wait("key:a", st.ID); st.State != jobs.StateSucceeded || st.Progress.PagesDone != 4 || st.FinishedAt == nil || st.ExpiresAt == nil {
		t.Fatalf("final status %+v", st)
	}
	res, err := e.m.Result(ctx, "key:a", st.ID)
	if err != nil {
		t.Fatal(err)
	}
	checkPages(t, res, []string{digest(a) + "#0", digest(tiff) + "#0", digest(tiff) + "#1", digest(b) + "#0"})
	if res.Pages[2].Source != (jobs.Source{Item: 1, Page: 1}) || res.Pages[3].Source != (jobs.Source{Item: 2, Page: 0}) {
		t.Errorf("sources %+v %+v", res.Pages[2].Source, res.Pages[3].Source)
	}
	if strings.Count(res.Text, "\f") != 3 {
		t.Errorf("text %q", res.Text)
	}
	// Another principal sees nothing.
	if _, err := e.m.Get(ctx, "key:b", st.ID); !errors.Is(err, jobs.ErrNotFound) {
		t.Errorf("another owner: %v", err)
	}
	if _, err := e.m.Result(ctx, "key:b", st.ID); !errors.Is(err, jobs.ErrNotFound) {
		t.Errorf("another owner's result: %v", err)
	}
}

func pdfAvailable(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("pdftoppm"); err != nil {
		testenv.Missing(t, "poppler-utils (pdftoppm) is not installed; run hack/setup.sh")
	}
}

func TestPDF(t *testing.T) {
	pdfAvailable(t)
	e := newEnv(t, nil)
	pdf := jobstest.PDF([]image.Image{imagetest.Marked(120, 60), imagetest.Marked(90, 45), imagetest.Marked(60, 30)}, 150)
	img := png(t, 30, 30)
	e.cfg.PDF.DPI = 150
	e.restart()
	st := e.submit("u", &jobs.Submission{Inputs: inputs(img, pdf)})
	if st.Progress.PagesTotal != 4 {
		t.Fatalf("pages %d", st.Progress.PagesTotal)
	}
	st = e.wait("u", st.ID)
	res, err := e.m.Result(ctx, "u", st.ID)
	if err != nil || st.State != jobs.StateSucceeded {
		t.Fatalf("%v %+v", err, st)
	}
	if n := e.renders.Load(); n != 3 {
		t.Errorf("%d renders held a worker, want one per PDF page (3)", n)
	}
	// Rendered at the PDF's own resolution, each page has its image's size.
	for i, want := range []image.Point{{30, 30}, {120, 60}, {90, 45}, {60, 30}} {
		p := res.Pages[i]
		if p.Error != nil || p.Width != want.X || p.Height != want.Y {
			t.Errorf("page %d: %dx%d %+v, want %v", i, p.Width, p.Height, p.Error, want)
		}
		if i > 0 && p.Source != (jobs.Source{Item: 1, Page: i - 1}) {
			t.Errorf("page %d source %+v", i, p.Source)
		}
	}
}

func TestSubmitErrors(t *testing.T) {
	e := newEnv(t, func(c *jobs.Config) { c.MaxItems = 3; c.MaxPages = 4 })
	good := png(t, 20, 20)
	fiveFrames := imagetest.TIFF([]imagetest.TIFFPage{{Img: imagetest.Marked(8, 8)}, {Img: imagetest.Marked(8, 8)}, {Img: imagetest.Marked(8, 8)}, {Img: imagetest.Marked(8, 8)}, {Img: imagetest.Marked(8, 8)}}, false)
	for _, tc := range []struct {
		name string
		sub  *jobs.Submission
		want error
	}{
		{"too many files", &jobs.Submission{Inputs: inputs(good, good, good, good)}, jobs.ErrTooLarge},
		{"too many pages", &jobs.Submission{Inputs: inputs(good, fiveFrames)}, jobs.ErrTooLarge},
		{"garbage file", &jobs.Submission{Inputs: inputs(good, []byte("not an image"))}, imageio.ErrUnsupported},
		{"bomb", &jobs.Submission{Inputs: inputs(imagetest.PNGHeader(30000, 30000))}, imageio.ErrTooLarge},
		{"webhook without a secret", &jobs.Submission{Inputs: inputs(good), WebhookURL: "https://example.com/hook"}, jobs.ErrWebhookDisabled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := e.m.Submit(ctx, jobs.Owner{ID: "u"}, tc.sub)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
		})
	}
	_, _, err := e.m.Submit(ctx, jobs.Owner{ID: "u"}, &jobs.Submission{Inputs: inputs(good, []byte("nope"))})
	var ie *imageio.Error
	if !errors.As(err, &ie) || !strings.HasPrefix(ie.Detail, "file 1:") {
		t.Errorf("the detail does not name the file: %v", err)
	}
}

func TestQueueBound(t *testing.T) {
	e := newEnv(t, func(c *jobs.Config) { c.MaxQueued = 2 })
	e.ocr.gate = make(chan struct{})
	img := png(t, 20, 20)
	a := e.submit("u", &jobs.Submission{Inputs: inputs(img)})
	e.submit("u", &jobs.Submission{Inputs: inputs(img)})
	if _, _, err := e.m.Submit(ctx, jobs.Owner{ID: "u"}, &jobs.Submission{Inputs: inputs(img)}); !errors.Is(err, jobs.ErrQueueFull) {
		t.Fatalf("third job: %v", err)
	}
	// Finishing one makes room.
	if _, err := e.m.Cancel(ctx, "u", a.ID); err != nil {
		t.Fatal(err)
	}
	e.submit("u", &jobs.Submission{Inputs: inputs(img)})
	close(e.ocr.gate)
}

func TestPendingBytesBound(t *testing.T) {
	img := png(t, 200, 200)
	e := newEnv(t, func(c *jobs.Config) { c.MaxPendingBytes = int64(len(img))*2 + 10; c.MaxBytes = c.MaxPendingBytes })
	e.ocr.gate = make(chan struct{})
	e.submit("u", &jobs.Submission{Inputs: inputs(img, img)})
	if _, _, err := e.m.Submit(ctx, jobs.Owner{ID: "u"}, &jobs.Submission{Inputs: inputs(img)}); !errors.Is(err, jobs.ErrQueueFull) {
		t.Fatalf("over the byte bound: %v", err)
	}
	close(e.ocr.gate)
}

func TestIdempotency(t *testing.T) {
	e := newEnv(t, nil)
	img, other := png(t, 20, 20), png(t, 21, 20)
	first := e.submit("u", &jobs.Submission{Inputs: inputs(img), IdempotencyKey: "k1"})
	again, created, err := e.m.Submit(ctx, jobs.Owner{ID: "u"}, &jobs.Submission{Inputs: inputs(img), IdempotencyKey: "k1"})
	if err != nil || created || again.ID != first.ID {
		t.Fatalf("replay: %v created=%v id %s vs %s", err, created, again.ID, first.ID)
	}
	if _, _, err := e.m.Submit(ctx, jobs.Owner{ID: "u"}, &jobs.Submission{Inputs: inputs(other), IdempotencyKey: "k1"}); !errors.Is(err, jobs.ErrIdempotencyConflict) {
		t.Fatalf("different body: %v", err)
	}
	if _, _, err := e.m.Submit(ctx, jobs.Owner{ID: "u"}, &jobs.Submission{Inputs: inputs(img), IdempotencyKey: "k1", OCR: jobs.OCROptions{Lang: "deu"}}); !errors.Is(err, jobs.ErrIdempotencyConflict) {
		t.Fatalf("different options: %v", err)
	}
	// Keys are per principal.
	if st := e.submit("v", &jobs.Submission{Inputs: inputs(img), IdempotencyKey: "k1"}); st.ID == first.ID {
		t.Fatal("another principal got the same job")
	}
	// Concurrent identical submissions make one job.
	var wg sync.WaitGroup
	ids := make([]string, 8)
	for i := range ids {
		wg.Go(func() {
			st, _, err := e.m.Submit(ctx, jobs.Owner{ID: "w"}, &jobs.Submission{Inputs: inputs(img), IdempotencyKey: "race"})
			if err != nil {
				t.Error(err)
			}
			ids[i] = st.ID
		})
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("concurrent replays made different jobs: %v", ids)
		}
	}
	// After deletion the key is free.
	e.wait("u", first.ID)
	if err := e.m.Delete(ctx, "u", first.ID); err != nil {
		t.Fatal(err)
	}
	if st := e.submit("u", &jobs.Submission{Inputs: inputs(other), IdempotencyKey: "k1"}); st.ID == first.ID {
		t.Fatal("deleted job replayed")
	}
}

// A restart in the middle of a job resumes it: every page once, and
// finished tasks are not run again.
func TestResumeAfterRestart(t *testing.T) {
	e := newEnv(t, nil)
	e.ocr.gate = make(chan struct{})
	var imgs [][]byte
	var want []string
	for i := 0; i < 10; i++ {
		img := png(t, 20+i, 20)
		imgs = append(imgs, img)
		want = append(want, digest(img)+"#0")
	}
	st := e.submit("u", &jobs.Submission{Inputs: inputs(imgs...)})
	for i := 0; i < 4; i++ {
		e.ocr.gate <- struct{}{}
	}
	e.waitPagesDone("u", st.ID, 4)
	e.restart() // the fifth page is in progress (waiting at the gate) and is abandoned
	close(e.ocr.gate)
	st = e.wait("u", st.ID)
	res, err := e.m.Result(ctx, "u", st.ID)
	if err != nil {
		t.Fatal(err)
	}
	checkPages(t, res, want)
	if n := e.ocr.calls.Load(); n != 10 {
		t.Errorf("%d recognitions for 10 pages: finished pages were run again", n)
	}
}

func TestCancelAndDelete(t *testing.T) {
	e := newEnv(t, nil)
	e.ocr.gate = make(chan struct{})
	img := png(t, 20, 20)
	st := e.submit("u", &jobs.Submission{Inputs: inputs(img, img, img)})
	e.ocr.gate <- struct{}{}
	e.waitPagesDone("u", st.ID, 1)
	if _, err := e.m.Result(ctx, "u", st.ID); !errors.Is(err, jobs.ErrNotFinished) {
		t.Fatalf("result of a running job: %v", err)
	}
	if _, err := e.m.Cancel(ctx, "v", st.ID); !errors.Is(err, jobs.ErrNotFound) {
		t.Fatalf("cancel by another owner: %v", err)
	}
	c, err := e.m.Cancel(ctx, "u", st.ID)
	if err != nil || c.State != jobs.StateCanceled {
		t.Fatalf("cancel: %+v %v", c, err)
	}
	again, err := e.m.Cancel(ctx, "u", st.ID)
	if err != nil || again.State != jobs.StateCanceled {
		t.Fatalf("second cancel: %+v %v", again, err)
	}
	res, err := e.m.Result(ctx, "u", st.ID)
	if err != nil || res.State != jobs.StateCanceled || len(res.Pages) != 1 {
		t.Fatalf("canceled result: %v %+v", err, res)
	}
	if err := e.m.Delete(ctx, "u", st.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.Get(ctx, "u", st.ID); !errors.Is(err, jobs.ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
	close(e.ocr.gate)
}

func TestRetention(t *testing.T) {
	e := newEnv(t, func(c *jobs.Config) { c.Retention = time.Hour })
	st := e.submit("u", &jobs.Submission{Inputs: inputs(png(t, 20, 20))})
	e.wait("u", st.ID)
	e.now.Add(int64(59 * time.Minute))
	e.restart() // the janitor sweeps at start
	if _, err := e.m.Get(ctx, "u", st.ID); err != nil {
		t.Fatalf("deleted before its time: %v", err)
	}
	e.now.Add(int64(2 * time.Minute))
	e.restart()
	if _, err := e.m.Get(ctx, "u", st.ID); !errors.Is(err, jobs.ErrNotFound) {
		t.Fatalf("kept past retention: %v", err)
	}
}

// Pages that cannot be read are reported as such; a job whose every page
// failed is failed.
func TestPageErrors(t *testing.T) {
	e := newEnv(t, nil)
	bad := png(t, 20, 21)
	e.ocr.fail = func(in ocr.Input) error {
		if bytes.Equal(in.Data, bad) {
			return &imageio.Error{Kind: imageio.ErrUnusable, Detail: "too blank"}
		}
		return nil
	}
	st := e.wait("u", e.submit("u", &jobs.Submission{Inputs: inputs(png(t, 20, 20), bad)}).ID)
	if st.State != jobs.StateSucceeded || st.Progress.PagesFailed != 1 {
		t.Fatalf("status %+v", st)
	}
	res, _ := e.m.Result(ctx, "u", st.ID)
	if p := res.Pages[1]; p.Error == nil || p.Error.Type != "https://visionserve.dev/problems/unusable-image" || p.Page != nil {
		t.Fatalf("page 1 %+v", p)
	}
	st = e.wait("u", e.submit("u", &jobs.Submission{Inputs: inputs(bad)}).ID)
	if st.State != jobs.StateFailed {
		t.Fatalf("all pages failed: %+v", st)
	}
}

// receiver records webhooks and answers with the statuses queued in codes
// (then 200).
type receiver struct {
	mu     sync.Mutex
	codes  []int
	got    []*http.Request
	bodies [][]byte
	srv    *httptest.Server
	notify chan struct{}
}

func newReceiver(t *testing.T, codes ...int) *receiver {
	r := &receiver{codes: codes, notify: make(chan struct{}, 100)}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, req)
		r.bodies = append(r.bodies, body)
		code := 200
		if len(r.codes) > 0 {
			code, r.codes = r.codes[0], r.codes[1:]
		}
		r.mu.Unlock()
		w.WriteHeader(code)
		r.notify <- struct{}{}
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) waitFor(t *testing.T, n int) {
	t.Helper()
	for {
		r.mu.Lock()
		got := len(r.got)
		r.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-r.notify:
		case <-time.After(30 * time.Second):
			t.Fatalf("%d webhooks received, want %d", got, n)
		}
	}
}

const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw1234567890AB"

func TestWebhookRetriedAndSigned(t *testing.T) {
	t.Setenv("TEST_WEBHOOK_SECRET", secret)
	rcv := newReceiver(t, 500, 503)
	e := newEnv(t, func(c *jobs.Config) { c.Webhook.SecretEnv = "TEST_WEBHOOK_SECRET" })
	e.realTime.Store(true)
	st := e.submit("u", &jobs.Submission{Inputs: inputs(png(t, 20, 20)), WebhookURL: rcv.srv.URL + "/hook"})
	rcv.waitFor(t, 3)
	key, _ := webhook.ParseSecret(secret)
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	ids := map[string]bool{}
	for i, req := range rcv.got {
		if err := webhook.Verify(key, req.Header, rcv.bodies[i], time.Now(), 5*time.Minute); err != nil {
			t.Errorf("attempt %d: %v", i, err)
		}
		ids[req.Header.Get(webhook.HeaderID)] = true
	}
	if len(ids) != 1 {
		t.Errorf("delivery ids %v: retries must keep the id", ids)
	}
	var ev jobs.Event
	if err := json.Unmarshal(rcv.bodies[2], &ev); err != nil || ev.Type != "job.succeeded" || ev.Data.ID != st.ID || ev.Data.State != jobs.StateSucceeded {
		t.Fatalf("event %+v %v", ev, err)
	}
	// A tampered body or a wrong key does not verify.
	if webhook.Verify(key, rcv.got[2].Header, append([]byte(" "), rcv.bodies[2]...), time.Now(), time.Minute) == nil {
		t.Error("tampered body verified")
	}
	if webhook.Verify([]byte("another key of thirty-two bytes!!"), rcv.got[2].Header, rcv.bodies[2], time.Now(), time.Minute) == nil {
		t.Error("wrong key verified")
	}
	if webhook.Verify(key, rcv.got[2].Header, rcv.bodies[2], time.Now().Add(time.Hour), time.Minute) == nil {
		t.Error("stale timestamp verified")
	}
}

// The outbox survives a restart: a webhook not yet delivered is sent by
// the next process.
func TestWebhookSurvivesRestart(t *testing.T) {
	t.Setenv("TEST_WEBHOOK_SECRET", secret)
	rcv := newReceiver(t, 503)
	e := newEnv(t, func(c *jobs.Config) {
		c.Webhook.SecretEnv = "TEST_WEBHOOK_SECRET"
		c.Webhook.InitialBackoff = time.Hour // no retry in this process
		c.Webhook.MaxBackoff = time.Hour
	})
	st := e.submit("u", &jobs.Submission{Inputs: inputs(png(t, 20, 20)), WebhookURL: rcv.srv.URL})
	rcv.waitFor(t, 1)
	e.now.Add(int64(2 * time.Hour))
	e.restart()
	rcv.waitFor(t, 2)
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if a, b := rcv.got[0].Header.Get(webhook.HeaderID), rcv.got[1].Header.Get(webhook.HeaderID); a != b || a == "" {
		t.Errorf("ids %q %q", a, b)
	}
	var ev jobs.Event
	json.Unmarshal(rcv.bodies[1], &ev)
	if ev.Data.ID != st.ID {
		t.Errorf("event for %s", ev.Data.ID)
	}
}

// By default a webhook may not reach private addresses: a name that
// resolves to one passes the submission, and the attempt fails at connect
// time (on the address dialled, after DNS) and the delivery is given up.
func TestWebhookPrivateNetworksRefused(t *testing.T) {
	t.Setenv("TEST_WEBHOOK_SECRET", secret)
	rcv := newReceiver(t)
	e := newEnv(t, func(c *jobs.Config) {
		c.Webhook.SecretEnv = "TEST_WEBHOOK_SECRET"
		c.Webhook.AllowPrivateNetworks = false
		c.Webhook.MaxAttempts = 1
	})
	e.submit("u", &jobs.Submission{Inputs: inputs(png(t, 20, 20)), WebhookURL: strings.Replace(rcv.srv.URL, "127.0.0.1", "localhost", 1)})
	for i := 0; ; i++ {
		if v := counter(e.metrics.Webhooks.WithLabelValues("gave_up")); v == 1 {
			break
		}
		if i > 20000 {
			t.Fatal("delivery not given up")
		}
		time.Sleep(time.Millisecond)
	}
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if len(rcv.got) != 0 {
		t.Fatal("a webhook reached a loopback address")
	}
}

func TestSecrets(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{secret, true},
		{"whsec_not base64!", false},
		{"whsec_c2hvcnQ=", false},
		{"short", false},
		{strings.Repeat("x", 32), true},
	} {
		if _, err := webhook.ParseSecret(tc.in); (err == nil) != tc.ok {
			t.Errorf("ParseSecret(%q): %v", tc.in, err)
		}
	}
}

func counter(c prometheus.Counter) float64 { return testutil.ToFloat64(c) }

// 410 Gone ends the delivery at once.
func TestWebhookGoneStops(t *testing.T) {
	t.Setenv("TEST_WEBHOOK_SECRET", secret)
	rcv := newReceiver(t, 410, 500)
	e := newEnv(t, func(c *jobs.Config) { c.Webhook.SecretEnv = "TEST_WEBHOOK_SECRET" })
	e.realTime.Store(true)
	e.submit("u", &jobs.Submission{Inputs: inputs(png(t, 20, 20)), WebhookURL: rcv.srv.URL})
	rcv.waitFor(t, 1)
	for i := 0; counter(e.metrics.Webhooks.WithLabelValues("gave_up")) != 1; i++ {
		if i > 20000 {
			t.Fatal("not given up")
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // several backoff periods: no retry may come
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if len(rcv.got) != 1 {
		t.Fatalf("%d attempts after 410", len(rcv.got))
	}
}

type runnerFunc func(ctx context.Context, fn func(context.Context) error) error

func (f runnerFunc) Run(ctx context.Context, fn func(context.Context) error) error { return f(ctx, fn) }

// Issue 11 item 9: a webhook URL naming an address that is not public is
// refused at submission (a name is checked when dialled).
func TestWebhookURLAddressRefused(t *testing.T) {
	t.Setenv("TEST_WEBHOOK_SECRET", secret)
	e := newEnv(t, func(c *jobs.Config) {
		c.Webhook.SecretEnv = "TEST_WEBHOOK_SECRET"
		c.Webhook.AllowPrivateNetworks = false
	})
	for _, u := range []string{"http://169.254.169.254/latest", "http://100.100.100.200/", "https://[::ffff:127.0.0.1]:8443/", "http://[64:ff9b::a00:1]/", "http://198.18.0.1/"} {
		if _, _, err := e.m.Submit(ctx, jobs.Owner{ID: "u"}, &jobs.Submission{Inputs: inputs(png(t, 20, 20)), WebhookURL: u}); !errors.Is(err, jobs.ErrBadRequest) {
			t.Errorf("%s: %v", u, err)
		}
	}
	if _, _, err := e.m.Submit(ctx, jobs.Owner{ID: "u"}, &jobs.Submission{Inputs: inputs(png(t, 20, 20)), WebhookURL: "https://hooks.example.com/x"}); err != nil {
		t.Errorf("a name: %v", err)
	}
}
