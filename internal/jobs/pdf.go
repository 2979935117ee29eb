package jobs

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// ErrPDF marks a PDF that cannot be read or rendered.
var ErrPDF = errors.New("unreadable PDF")

// errOutputOver: a child wrote more than it may.
var errOutputOver = errors.New("too much output")

// Rasterizer reads PDFs. Poppler implements it with poppler-utils; tests
// may substitute their own.
type Rasterizer interface {
	// Pages returns each page's size in points (1/72 inch), reading at
	// most maxPages+1 pages so an oversized document is cheap to refuse.
	Pages(ctx context.Context, doc *PDFFile, maxPages int) ([]PageSize, error)
	// Render rasterises 1-based page at dpi into a grey PNG.
	Render(ctx context.Context, doc *PDFFile, page, dpi int) ([]byte, error)
}

// PageSize is a page's size in points.
type PageSize struct{ W, H float64 }

// Poppler runs pdfinfo and pdftoppm as child processes with limits: a
// timeout (from ctx), an address-space limit, a file-size limit, output
// read back only up to MaxOutput, in a private working directory. Neither
// the document nor a rendered page touches a file system: the child reads
// the PDF from an inherited memory file and pdftoppm writes the page to
// its standard output.
type Poppler struct {
	Pdfinfo, Pdftoppm string
	MemoryLimit       int64 // bytes of address space
	MaxOutput         int64 // bytes of one rendered page
	// TempDir is the children's working directory (they write nothing
	// there); empty: the process's.
	TempDir string
}

var _ Rasterizer = (*Poppler)(nil)

// Available reports whether the commands are installed.
func (p *Poppler) Available() error {
	for _, c := range []string{p.Pdfinfo, p.Pdftoppm} {
		if _, err := exec.LookPath(c); err != nil {
			return fmt.Errorf("%s not found (install poppler-utils; hack/setup.sh does): %w", c, err)
		}
	}
	return nil
}

// limited runs name with args under ulimit -v (memory) and -f (file size),
// killing it when ctx ends, with doc open at childPath. It returns stdout,
// at most maxOut bytes.
func (p *Poppler) limited(ctx context.Context, doc *PDFFile, maxOut int64, name string, args ...string) ([]byte, error) {
	// POSIX sh's ulimit -f counts 512-byte blocks; -v is in KiB.
	script := `ulimit -v "$1" && ulimit -f "$2" && shift 2 && exec "$@"`
	all := append([]string{"-c", script, "sh", strconv.FormatInt(max(p.MemoryLimit>>10, 1), 10), strconv.FormatInt(max(p.MaxOutput/512+1, 1), 10), name}, args...)
	cmd := exec.CommandContext(ctx, "/bin/sh", all...)
	cmd.Dir = p.TempDir
	cmd.ExtraFiles = []*os.File{doc.f} // childFD
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C"}
	cmd.WaitDelay = time.Second
	var out, errb limitedBuffer
	// Past its bound stdout is closed (limitedBuffer.ReadFrom returns):
	// the child dies of SIGPIPE instead of writing on.
	out.max, errb.max = maxOut, 4<<10
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if out.over {
		return nil, fmt.Errorf("%w: %w: %s wrote more than %d bytes", ErrPDF, errOutputOver, filepath.Base(name), maxOut)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v: %s", ErrPDF, filepath.Base(name), err, strings.TrimSpace(errb.String()))
	}
	return out.Bytes(), nil
}

var (
	pagesLine    = regexp.MustCompile(`(?m)^Pages:\s+(\d+)\s*$`)
	pageSizeLine = regexp.MustCompile(`^Page\s+(\d+) size:\s+([0-9.]+) x ([0-9.]+) pts`)
)

// Pages implements Rasterizer.
func (p *Poppler) Pages(ctx context.Context, doc *PDFFile, maxPages int) ([]PageSize, error) {
	out, err := p.limited(ctx, doc, 64<<10, p.Pdfinfo, childPath)
	if err != nil {
		return nil, err
	}
	m := pagesLine.FindSubmatch(out)
	if m == nil {
		return nil, fmt.Errorf("%w: pdfinfo reported no page count", ErrPDF)
	}
	n, err := strconv.Atoi(string(m[1]))
	if err != nil || n <= 0 {
		return nil, fmt.Errorf("%w: the document has no pages", ErrPDF)
	}
	if n > maxPages {
		return make([]PageSize, maxPages+1), nil
	}
	out, err = p.limited(ctx, doc, int64(n)*256+64<<10, p.Pdfinfo, "-f", "1", "-l", strconv.Itoa(n), childPath)
	if err != nil {
		return nil, err
	}
	sizes := make([]PageSize, n)
	seen := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		m := pageSizeLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		i, _ := strconv.Atoi(m[1])
		w, _ := strconv.ParseFloat(m[2], 64)
		h, _ := strconv.ParseFloat(m[3], 64)
		if i < 1 || i > n || !(w > 0) || !(h > 0) || w > 1e6 || h > 1e6 {
			return nil, fmt.Errorf("%w: page %s has size %s x %s", ErrPDF, m[1], m[2], m[3])
		}
		sizes[i-1] = PageSize{W: w, H: h}
		seen++
	}
	if seen != n {
		return nil, fmt.Errorf("%w: pdfinfo gave sizes for %d of %d pages", ErrPDF, seen, n)
	}
	return sizes, nil
}

// Render implements Rasterizer. Without an output root, pdftoppm
// -singlefile writes the page to its standard output, read back up to
// MaxOutput.
func (p *Poppler) Render(ctx context.Context, doc *PDFFile, page, dpi int) ([]byte, error) {
	out, err := p.limited(ctx, doc, p.MaxOutput, p.Pdftoppm, "-q", "-f", strconv.Itoa(page), "-l", strconv.Itoa(page),
		"-r", strconv.Itoa(dpi), "-gray", "-png", "-singlefile", childPath)
	switch {
	case errors.Is(err, errOutputOver):
		return nil, fmt.Errorf("%w: page %d rendered to more than %d bytes", ErrPDF, page, p.MaxOutput)
	case err != nil:
		return nil, err
	case len(out) == 0:
		return nil, fmt.Errorf("%w: pdftoppm wrote no page", ErrPDF)
	}
	return out, nil
}

// PageDPI is the resolution for a page of size s: dpi, or lower so that
// the page stays within maxPixels.
func PageDPI(s PageSize, dpi int, maxPixels int64) int {
	wIn, hIn := s.W/72, s.H/72
	if px := wIn * hIn * float64(dpi) * float64(dpi); px > float64(maxPixels) {
		dpi = int(math.Floor(math.Sqrt(float64(maxPixels) / (wIn * hIn))))
	}
	return max(dpi, 1)
}

// limitedBuffer keeps at most max bytes and notes when more came.
type limitedBuffer struct {
	bytes.Buffer
	max  int64
	over bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	room := b.max - int64(b.Len())
	if int64(len(p)) > room {
		b.over = true
		if room > 0 {
			b.Buffer.Write(p[:room])
		}
		return len(p), nil
	}
	return b.Buffer.Write(p)
}

// ReadFrom overrides bytes.Buffer's, which io.Copy (and so os/exec) would
// otherwise use to bypass the limit in Write.
func (b *limitedBuffer) ReadFrom(r io.Reader) (int64, error) {
	var total int64
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		total += int64(n)
		_, _ = b.Write(buf[:n])
		if errors.Is(err, io.EOF) {
			return total, nil
		}
		if err != nil || b.over {
			return total, err
		}
	}
}
