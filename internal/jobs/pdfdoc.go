package jobs

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// PDFFile is a PDF held for the renderer in an anonymous memory file
// (memfd_create), never in a file system: a job's input, sealed at rest,
// has no copy in clear on disk while its pages are rendered. The file is
// sealed against writes once filled, so a renderer child cannot change
// what the next one reads. Each child gets it as an inherited descriptor
// (ExtraFiles) and opens it by its /proc/self/fd path, which gives the
// child an offset of its own.
type PDFFile struct {
	f    *os.File
	size int64
}

// NewPDFFile copies data into a new sealed memory file; Close frees it.
func NewPDFFile(data []byte) (*PDFFile, error) {
	fd, err := unix.MemfdCreate("visionserve-pdf", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), "memfd:visionserve-pdf")
	if _, err := f.Write(data); err != nil {
		f.Close()
		return nil, fmt.Errorf("filling the PDF's memory file: %w", err)
	}
	if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_WRITE|unix.F_SEAL_SEAL); err != nil {
		f.Close()
		return nil, fmt.Errorf("sealing the PDF's memory file: %w", err)
	}
	return &PDFFile{f: f, size: int64(len(data))}, nil
}

// Size is the document's length in bytes.
func (d *PDFFile) Size() int64 { return d.size }

// Close frees the memory file (children still holding it keep it alive).
func (d *PDFFile) Close() error { return d.f.Close() }

// childFD is the descriptor a child sees the PDF at: the first of
// exec.Cmd.ExtraFiles.
const childFD = 3

// childPath is the path a child opens the PDF by.
var childPath = fmt.Sprintf("/proc/self/fd/%d", childFD)
