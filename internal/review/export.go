package review

import (
	"archive/tar"
	"archive/zip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// Export formats.
const (
	FormatTar = "tar"
	FormatZip = "zip"
)

// ExportFormat checks an export format name ("" is tar) and returns it
// with its media type.
func ExportFormat(name string) (format, contentType string, err error) {
	switch name {
	case "", FormatTar:
		return FormatTar, "application/x-tar", nil
	case FormatZip:
		return FormatZip, "application/zip", nil
	}
	return "", "", invalid("format=%q: use tar or zip", name)
}

// ExportFilter selects the reviews to export.
type ExportFilter struct {
	// Model, when set, keeps the reviews of lines that model read: a
	// calibration belongs to one model.
	Model string
}

// Export writes the tenant's reviews to w as an archive in the layout
// `visionserve calibrate --data` reads: for each review <id>.png (the
// line), <id>.gt.txt (the corrected text and a newline) and <id>.json
// (the review without its image: the model's reading, confidence and
// tier, for provenance). It returns how many reviews it wrote. The archive
// streams: an error part-way leaves w truncated, which the caller can only
// log once the answer has started.
func (s *Service) Export(ctx context.Context, tenant, format string, f ExportFilter, w io.Writer) (int, error) {
	format, _, err := ExportFormat(format)
	if err != nil {
		return 0, err
	}
	var a archiveWriter
	if format == FormatZip {
		a = zipWriter{zip.NewWriter(w)}
	} else {
		a = tarWriter{tar.NewWriter(w)}
	}
	n := 0
	err = s.store.Each(ctx, tenant, func(r Review) error {
		if f.Model != "" && r.Model.Name != f.Model {
			return nil
		}
		meta, err := json.Marshal(r)
		if err != nil {
			return err
		}
		for _, e := range []struct {
			ext  string
			data []byte
		}{{".png", r.Image}, {".gt.txt", []byte(r.Corrected + "\n")}, {".json", append(meta, '\n')}} {
			if err := a.add(r.ID+e.ext, r.Created, e.data); err != nil {
				return err
			}
		}
		n++
		return ctx.Err()
	})
	if err != nil {
		return n, err
	}
	return n, a.Close()
}

type archiveWriter interface {
	add(name string, mod time.Time, data []byte) error
	Close() error
}

type tarWriter struct{ *tar.Writer }

func (t tarWriter) add(name string, mod time.Time, data []byte) error {
	if err := t.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: mod, Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	_, err := t.Write(data)
	return err
}

type zipWriter struct{ *zip.Writer }

func (z zipWriter) add(name string, mod time.Time, data []byte) error {
	// PNG is compressed already: store it; deflate the text.
	method := zip.Deflate
	if len(name) > 4 && name[len(name)-4:] == ".png" {
		method = zip.Store
	}
	fw, err := z.CreateHeader(&zip.FileHeader{Name: name, Method: method, Modified: mod})
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	_, err = fw.Write(data)
	return err
}
