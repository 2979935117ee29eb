package jobs_test

import (
	"bytes"
	"errors"
	"image"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/visionserve/visionserve/internal/imageio/imagetest"
	"github.com/visionserve/visionserve/internal/jobs"
	"github.com/visionserve/visionserve/internal/jobs/jobstest"
	"github.com/visionserve/visionserve/internal/keys"
	"github.com/visionserve/visionserve/internal/keys/keytest"
)

// With encryption on, a PDF job's input and its rendered pages never
// reach a file system in clear: not while the job plans and runs its
// pages, not while format=pdf renders them again. inotify sees every file
// created or written under jobs.dir as it happens (a copy removed a moment
// later included): nothing may be created in the renderer's directory
// (jobs.dir/tmp), and no file written holds the PDF or a PNG.
func TestPDFInputNeverOnDiskInClear(t *testing.T) {
	pdfAvailable(t)
	e := newSealedEnv(t, nil, keytest.Config(t, keys.AES256GCM))
	w := watchTree(t, e.dir)
	tmp := filepath.Join(e.dir, "tmp")
	if _, err := os.Stat(tmp); err != nil {
		t.Fatalf("the renderer's directory: %v", err)
	}

	pdf := jobstest.PDF([]image.Image{imagetest.Marked(120, 60), imagetest.Marked(90, 45)}, 150)
	st := e.submit("u", &jobs.Submission{Inputs: inputs(pdf)})
	st = e.wait("u", st.ID)
	if st.State != jobs.StateSucceeded {
		t.Fatalf("job %+v", st)
	}
	if out, err := renderJob(t, e.m, "u", st.ID, "pdf", jobs.AllPages); err != nil || !strings.HasPrefix(out, "%PDF-") {
		t.Fatalf("format=pdf: %v %.20q", err, out)
	}
	if n := e.renders.Load(); n < 2 {
		t.Fatalf("%d pages rendered, want at least 2", n)
	}
	if err := e.m.Close(); err != nil { // the database's last writes and close
		t.Fatal(err)
	}

	needles := map[string][]byte{"the PDF": pdf, "a PDF header": []byte("%PDF-"), "a PNG": []byte("\x89PNG\r\n\x1a\n")}
	created, written := w.stop()
	for _, p := range created {
		if rel, _ := filepath.Rel(tmp, p); !strings.HasPrefix(rel, "..") {
			t.Errorf("the renderer's directory got %s", p)
		}
	}
	if written == 0 {
		t.Fatal("no write under jobs.dir was seen: the watch sees nothing")
	}
	for _, leak := range w.leaks(needles) {
		t.Error(leak)
	}
	// And what is left on disk at the end.
	err := filepath.WalkDir(e.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for name, n := range needles {
			if bytes.Contains(data, n) {
				t.Errorf("%s holds %s in clear", p, name)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// treeWatch records through inotify what is created and written under a
// directory tree, watching each new directory as it appears, and keeps a
// copy of each file as it was when closed after writing.
type treeWatch struct {
	t    *testing.T
	f    *os.File
	done chan struct{}

	mu      sync.Mutex
	dirs    map[int32]string
	created []string
	written int
	closed  map[string][][]byte
}

func watchTree(t *testing.T, root string) *treeWatch {
	t.Helper()
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		t.Skipf("inotify: %v", err)
	}
	w := &treeWatch{t: t, f: os.NewFile(uintptr(fd), "inotify"), done: make(chan struct{}),
		dirs: map[int32]string{}, closed: map[string][][]byte{}}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			err = w.add(p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	go w.run()
	t.Cleanup(func() { w.stop() })
	return w
}

func (w *treeWatch) add(dir string) error {
	wd, err := unix.InotifyAddWatch(int(w.f.Fd()), dir, unix.IN_CREATE|unix.IN_MODIFY|unix.IN_CLOSE_WRITE|unix.IN_MOVED_TO)
	if err != nil {
		return err
	}
	w.mu.Lock()
	w.dirs[int32(wd)] = dir
	w.mu.Unlock()
	return nil
}

func (w *treeWatch) run() {
	defer close(w.done)
	buf := make([]byte, 64<<10)
	for {
		n, err := w.f.Read(buf)
		if err != nil {
			if !errors.Is(err, os.ErrClosed) {
				w.t.Errorf("reading inotify events: %v", err)
			}
			return
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			name := string(bytes.TrimRight(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+int(ev.Len)], "\x00"))
			off += unix.SizeofInotifyEvent + int(ev.Len)
			w.mu.Lock()
			p := filepath.Join(w.dirs[ev.Wd], name)
			w.mu.Unlock()
			w.event(p, ev.Mask)
		}
	}
}

func (w *treeWatch) event(p string, mask uint32) {
	switch {
	case mask&unix.IN_ISDIR != 0 && mask&(unix.IN_CREATE|unix.IN_MOVED_TO) != 0:
		_ = w.add(p) // gone already: nothing was written in it since
	case mask&(unix.IN_CREATE|unix.IN_MOVED_TO) != 0:
		w.mu.Lock()
		w.created = append(w.created, p)
		w.mu.Unlock()
	case mask&unix.IN_MODIFY != 0:
		w.mu.Lock()
		w.written++
		w.mu.Unlock()
	case mask&unix.IN_CLOSE_WRITE != 0:
		data, err := os.ReadFile(p)
		if err != nil {
			return // removed already; its creation was recorded
		}
		w.mu.Lock()
		w.closed[p] = append(w.closed[p], data)
		w.mu.Unlock()
	}
}

// stop ends the watch and returns the files created and the number of
// writes seen.
func (w *treeWatch) stop() (created []string, written int) {
	w.f.Close()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.created, w.written
}

// leaks describes each file that held a needle when it was closed.
func (w *treeWatch) leaks(needles map[string][]byte) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for p, copies := range w.closed {
		for _, data := range copies {
			for name, n := range needles {
				if bytes.Contains(data, n) {
					out = append(out, p+" held "+name+" in clear when it was closed")
				}
			}
		}
	}
	return out
}
