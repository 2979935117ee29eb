package jobs_test

import (
	"bytes"
	"errors"
	"image"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/visionserve/visionserve/internal/gallery/pgtest"
	"github.com/visionserve/visionserve/internal/imageio/imagetest"
	"github.com/visionserve/visionserve/internal/jobs"
	"github.com/visionserve/visionserve/internal/jobs/jobstest"
	"github.com/visionserve/visionserve/internal/render"
)

// Two managers on one PostgreSQL database are two replicas: a job
// submitted to one is visible (to its owner only) through the other, its
// tasks run on both at once, its result reads the same everywhere, and a
// cancel through one replica stops the task running on the other (at its
// next lease renewal).
func TestReplicasSharePostgres(t *testing.T) {
	srv := pgtest.Start(t)
	open := func() (*jobs.Manager, *fakeOCR) {
		o := &fakeOCR{gate: make(chan struct{}), arrived: make(chan struct{}, 10)}
		cfg := jobs.DefaultConfig()
		cfg.Store, cfg.Postgres = jobs.StorePostgres, srv.DSN
		cfg.Lease, cfg.PollInterval = 3*time.Second, 20*time.Millisecond
		cfg.Webhook.SecretEnv = ""
		m, err := jobs.Open(jobs.Options{Config: cfg, OCR: o})
		if err != nil {
			t.Fatal(err)
		}
		m.Start()
		t.Cleanup(func() { m.Close() })
		return m, o
	}
	a, ocrA := open()
	b, ocrB := open()
	var imgs [][]byte
	var want []string
	for i := 0; i < 4; i++ {
		imgs = append(imgs, png(t, 20+i, 20))
		want = append(want, digest(imgs[i])+"#0")
	}
	owner := jobs.Owner{ID: "key:x", Tenant: "X"}
	st, _, err := a.Submit(ctx, owner, &jobs.Submission{Inputs: inputs(imgs...)})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := b.Get(ctx, "key:x", st.ID); err != nil || got.Progress.PagesTotal != 4 {
		t.Fatalf("through the other replica: %+v %v", got, err)
	}
	if _, err := b.Get(ctx, "key:y", st.ID); !errors.Is(err, jobs.ErrNotFound) {
		t.Fatalf("another principal through the other replica: %v", err)
	}
	// Each replica holds a task of the job at once.
	<-ocrA.arrived
	<-ocrB.arrived
	ocrA.gate <- struct{}{}
	ocrB.gate <- struct{}{}
	for done := 2; done < 4; done++ {
		select {
		case <-ocrA.arrived:
			ocrA.gate <- struct{}{}
		case <-ocrB.arrived:
			ocrB.gate <- struct{}{}
		}
	}
	final := waitManager(t, b, "key:x", st.ID)
	if final.State != jobs.StateSucceeded || final.Progress.PagesDone != 4 {
		t.Fatalf("final %+v", final)
	}
	for _, m := range []*jobs.Manager{a, b} {
		res, err := m.Result(ctx, "key:x", st.ID)
		if err != nil {
			t.Fatal(err)
		}
		checkPages(t, res, want)
	}

	// A cancel through one replica stops the task on the other.
	st, _, err = a.Submit(ctx, owner, &jobs.Submission{Inputs: inputs(png(t, 40, 40))})
	if err != nil {
		t.Fatal(err)
	}
	var holder *fakeOCR
	other := a
	select {
	case <-ocrA.arrived:
		holder, other = ocrA, b
	case <-ocrB.arrived:
		holder = ocrB
	}
	if _, err := other.Cancel(ctx, "key:x", st.ID); err != nil {
		t.Fatal(err)
	}
	for i := 0; holder.canceled.Load() == 0; i++ {
		if i > 3000 {
			t.Fatal("the task kept running on the replica that holds it")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitManager polls until job id is final.
func waitManager(t *testing.T, m *jobs.Manager, owner, id string) jobs.Status {
	t.Helper()
	for i := 0; i < 20000; i++ {
		st, err := m.Get(ctx, owner, id)
		if err != nil {
			t.Fatal(err)
		}
		if st.State.Terminal() {
			return st
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("job %s did not finish", id)
	return jobs.Status{}
}

// With PostgreSQL, a job's result renders from any replica: the pages and
// the input files are in the database. Replica A runs a job of a
// three-page PDF and a two-page TIFF and is closed (its temporary files
// gone); replica B writes the searchable PDF of the whole job, each page
// holding the text of the JSON result, and its ALTO.
func TestReplicasRenderPostgres(t *testing.T) {
	pdfAvailable(t)
	srv := pgtest.Start(t)
	open := func() *jobs.Manager {
		cfg := jobs.DefaultConfig()
		cfg.Store, cfg.Postgres = jobs.StorePostgres, srv.DSN
		cfg.Lease, cfg.PollInterval = 3*time.Second, 20*time.Millisecond
		cfg.Webhook.SecretEnv = ""
		cfg.PDF.DPI = 100
		m, err := jobs.Open(jobs.Options{Config: cfg, OCR: &fakeOCR{}})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	a := open()
	a.Start()
	b := open()
	defer b.Close()
	pdf := jobstest.PDF([]image.Image{imagetest.Marked(120, 60), imagetest.Marked(90, 45), imagetest.Marked(60, 80)}, 100)
	tiff := imagetest.TIFF([]imagetest.TIFFPage{{Img: imagetest.Marked(70, 50)}, {Img: imagetest.Marked(50, 70)}}, false)
	owner := jobs.Owner{ID: "key:x"}
	st, _, err := a.Submit(ctx, owner, &jobs.Submission{Inputs: inputs(pdf, tiff)})
	if err != nil {
		t.Fatal(err)
	}
	if final := waitManager(t, a, "key:x", st.ID); final.State != jobs.StateSucceeded || final.Progress.PagesDone != 5 {
		t.Fatalf("final %+v", final)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	res, err := b.Result(ctx, "key:x", st.ID)
	if err != nil {
		t.Fatal(err)
	}
	renderAs := func(format string) []byte {
		t.Helper()
		f, err := render.Lookup(format)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := b.Render(ctx, "key:x", st.ID, f, jobs.AllPages, &out); err != nil {
			t.Fatalf("%s through the other replica: %v", format, err)
		}
		return out.Bytes()
	}
	doc := renderAs("pdf")
	path := filepath.Join(t.TempDir(), "job.pdf")
	if err := os.WriteFile(path, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("qpdf", "--check", path).CombinedOutput(); err != nil {
		t.Errorf("qpdf --check: %v\n%s", err, out)
	}
	out, err := exec.Command("pdftotext", path, "-").Output()
	if err != nil {
		t.Fatal(err)
	}
	pages := strings.Split(strings.TrimSuffix(string(out), "\f"), "\f")
	if len(pages) != 5 {
		t.Fatalf("%d pages in the PDF: %q", len(pages), out)
	}
	for i, p := range res.Pages {
		if got := strings.TrimSpace(pages[i]); got != p.Lines[0].Text {
			t.Errorf("PDF page %d: %q, JSON %q", i, got, p.Lines[0].Text)
		}
	}
	if alto := renderAs("alto"); bytes.Count(alto, []byte("<Page ")) != 5 || !bytes.Contains(alto, []byte(res.Pages[4].Lines[0].Text)) {
		t.Errorf("alto:\n%s", alto)
	}
}
