package jobs_test

import (
	"bytes"
	"context"
	"errors"
	"image"
	stdpng "image/png"
	"testing"
	"time"

	"github.com/visionserve/visionserve/internal/imageio"
	"github.com/visionserve/visionserve/internal/imageio/imagetest"
	"github.com/visionserve/visionserve/internal/jobs"
	"github.com/visionserve/visionserve/internal/jobs/jobstest"
)

func poppler(t *testing.T) *jobs.Poppler {
	pdfAvailable(t)
	return &jobs.Poppler{Pdfinfo: "pdfinfo", Pdftoppm: "pdftoppm", MemoryLimit: 1 << 30, MaxOutput: 8 << 20, TempDir: t.TempDir()}
}

func memPDF(t *testing.T, data []byte) *jobs.PDFFile {
	doc, err := jobs.NewPDFFile(data)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { doc.Close() })
	return doc
}

func TestPoppler(t *testing.T) {
	p := poppler(t)
	ctx := context.Background()
	doc := memPDF(t, jobstest.PDF([]image.Image{imagetest.Marked(144, 72), imagetest.Marked(72, 144), imagetest.Marked(10, 10)}, 72))
	sizes, err := p.Pages(ctx, doc, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(sizes) != 3 || sizes[0] != (jobs.PageSize{W: 144, H: 72}) || sizes[1] != (jobs.PageSize{W: 72, H: 144}) {
		t.Fatalf("sizes %v", sizes)
	}
	// Over the page budget: refused cheaply, without listing every page.
	if sizes, err := p.Pages(ctx, doc, 2); err != nil || len(sizes) != 3 {
		t.Fatalf("over budget: %v %v", sizes, err)
	}
	out, err := p.Render(ctx, doc, 2, 144)
	if err != nil {
		t.Fatal(err)
	}
	img, err := stdpng.Decode(bytes.NewReader(out))
	if err != nil || img.Bounds().Dx() != 144 || img.Bounds().Dy() != 288 {
		t.Fatalf("page 2 at 144 dpi: %v %v", img.Bounds(), err)
	}
	// Output over the limit is refused.
	small := *p
	small.MaxOutput = 100
	if _, err := small.Render(ctx, doc, 1, 300); !errors.Is(err, jobs.ErrPDF) {
		t.Fatalf("oversized render: %v", err)
	}
	// Garbage, and a page that does not exist.
	bad := memPDF(t, []byte("%PDF-1.4\nthis is not really a pdf\n"))
	if _, err := p.Pages(ctx, bad, 10); !errors.Is(err, jobs.ErrPDF) {
		t.Fatalf("garbage: %v", err)
	}
	if _, err := p.Render(ctx, doc, 7, 72); !errors.Is(err, jobs.ErrPDF) {
		t.Fatalf("page 7 of 3: %v", err)
	}
	// A context that has ended stops the child.
	done, cancel := context.WithTimeout(ctx, time.Nanosecond)
	defer cancel()
	<-done.Done()
	if _, err := p.Render(done, doc, 1, 72); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("expired context: %v", err)
	}
}

func TestPageDPI(t *testing.T) {
	a4 := jobs.PageSize{W: 595, H: 842}
	if got := jobs.PageDPI(a4, 300, 50_000_000); got != 300 {
		t.Errorf("A4 at 300 dpi within 50 Mpx: %d", got)
	}
	// A poster: 1 m x 1 m at 300 dpi is 139 Mpx; lowered to fit 50 Mpx.
	poster := jobs.PageSize{W: 2835, H: 2835}
	dpi := jobs.PageDPI(poster, 300, 50_000_000)
	if px := (2835.0 / 72 * float64(dpi)) * (2835.0 / 72 * float64(dpi)); dpi >= 300 || px > 50_000_000 {
		t.Errorf("poster: %d dpi, %.0f px", dpi, px)
	}
}

// A PDF that poppler cannot read is refused at submission, like a
// corrupt image.
func TestSubmitBadPDF(t *testing.T) {
	pdfAvailable(t)
	e := newEnv(t, nil)
	_, _, err := e.m.Submit(ctx, jobs.Owner{ID: "u"}, &jobs.Submission{Inputs: inputs([]byte("%PDF-1.7\ngarbage"))})
	if !errors.Is(err, imageio.ErrUndecodable) {
		t.Fatalf("err %v", err)
	}
	many := jobstest.PDF([]image.Image{imagetest.Marked(10, 10), imagetest.Marked(10, 10), imagetest.Marked(10, 10)}, 72)
	e.cfg.MaxPages = 2
	e.restart()
	if _, _, err := e.m.Submit(ctx, jobs.Owner{ID: "u"}, &jobs.Submission{Inputs: inputs(many)}); !errors.Is(err, jobs.ErrTooLarge) {
		t.Fatalf("too many PDF pages: %v", err)
	}
}
