package jobs_test

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/visionserve/visionserve/internal/jobs"
	"github.com/visionserve/visionserve/internal/ocr"
	"github.com/visionserve/visionserve/internal/render"
)

func renderJob(t *testing.T, m *jobs.Manager, owner, id, format string, page int) (string, error) {
	t.Helper()
	f, err := render.Lookup(format)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	err = m.Render(ctx, owner, id, f, page, &b)
	return b.String(), err
}

// A canceled job's documents hold the pages read before the cancellation
// (each under its own number); a page it never reached has no result to
// show; a job still running has no document; only its owner sees one.
func TestRenderCanceledJob(t *testing.T) {
	e := newEnv(t, nil)
	e.ocr.gate = make(chan struct{})
	defer close(e.ocr.gate)
	st := e.submit("u", &jobs.Submission{Inputs: inputs(png(t, 20, 20), png(t, 30, 20), png(t, 40, 20))})
	if _, err := renderJob(t, e.m, "u", st.ID, "text", jobs.AllPages); !errors.Is(err, jobs.ErrNotFinished) {
		t.Fatalf("a running job: %v", err)
	}
	e.ocr.gate <- struct{}{}
	e.waitPagesDone("u", st.ID, 1)
	if _, err := e.m.Cancel(ctx, "u", st.ID); err != nil {
		t.Fatal(err)
	}
	res, err := e.m.Result(ctx, "u", st.ID)
	if err != nil || len(res.Pages) != 1 {
		t.Fatalf("result %+v %v", res, err)
	}
	text, err := renderJob(t, e.m, "u", st.ID, "text", jobs.AllPages)
	if err != nil || text != res.Text+"\n" {
		t.Errorf("text %q %v, want %q", text, err, res.Text)
	}
	hocr, err := renderJob(t, e.m, "u", st.ID, "hocr", jobs.AllPages)
	if n := res.Pages[0].Index + 1; err != nil || strings.Count(hocr, `class="ocr_page"`) != 1 || !strings.Contains(hocr, `id="page_`+strconv.Itoa(n)+`"`) {
		t.Errorf("hocr %v:\n%s", err, hocr)
	}
	// PAGE XML holds one page, and this job has one.
	if _, err := renderJob(t, e.m, "u", st.ID, "page", jobs.AllPages); err != nil {
		t.Errorf("page of a one-page result: %v", err)
	}
	missing := (res.Pages[0].Index + 1) % 3
	if _, err := renderJob(t, e.m, "u", st.ID, "alto", missing); !errors.Is(err, jobs.ErrNoResult) || !strings.Contains(err.Error(), "before the job was canceled") {
		t.Errorf("a page never read: %v", err)
	}
	if one, err := e.m.ResultPage(ctx, "u", st.ID, missing); !errors.Is(err, jobs.ErrNoResult) {
		t.Errorf("its JSON: %+v %v", one, err)
	}
	if _, err := renderJob(t, e.m, "v", st.ID, "text", jobs.AllPages); !errors.Is(err, jobs.ErrNotFound) {
		t.Errorf("another owner: %v", err)
	}
}

// A job all of whose pages failed has nothing to show but its errors:
// every document format refuses it, and its JSON lists the errors.
func TestRenderFailedJob(t *testing.T) {
	e := newEnv(t, nil)
	e.ocr.fail = func(ocr.Input) error { return errors.New("engine broke") }
	st := e.submit("u", &jobs.Submission{Inputs: inputs(png(t, 20, 20))})
	if final := e.wait("u", st.ID); final.State != jobs.StateFailed {
		t.Fatalf("final %+v", final)
	}
	for _, format := range []string{"text", "hocr", "alto", "page", "pdf"} {
		if _, err := renderJob(t, e.m, "u", st.ID, format, jobs.AllPages); !errors.Is(err, jobs.ErrNoResult) {
			t.Errorf("%s: %v", format, err)
		}
	}
	if res, err := e.m.ResultPage(ctx, "u", st.ID, 0); err != nil || res.Pages[0].Error == nil {
		t.Errorf("json of the failed page: %+v %v", res, err)
	}
}
