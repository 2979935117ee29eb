package cli

import (
	"archive/tar"
	"archive/zip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// EnvAPIKey holds the credential (an API key or a JWT) that commands
// calling a server send as Authorization: Bearer.
const EnvAPIKey = "VISIONSERVE_API_KEY"

// reviewLimits bound what fetchReviews accepts from a server.
type reviewLimits struct {
	Bytes   int64 // the archive, and the files it holds in total
	Entries int
}

// exportURL resolves --reviews: a server's address alone means its export
// route, and the export is limited to model unless the URL names one.
func exportURL(raw, model string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("--reviews %q: want an http(s) URL, e.g. http://127.0.0.1:8080/v1/reviews/export", raw)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1/reviews/export"
	}
	q := u.Query()
	if q.Get("model") == "" && model != "" {
		q.Set("model", model)
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// fetchReviews downloads a review export (GET /v1/reviews/export) into
// dir, with the credential from $VISIONSERVE_API_KEY. Only plain files
// with plain names are written, within the limits; anything else in the
// archive is an error, never a write outside dir.
func fetchReviews(ctx context.Context, rawURL, dir string, lim reviewLimits) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return 0, err
	}
	if key := strings.TrimSpace(os.Getenv(EnvAPIKey)); key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var p struct{ Detail, Title string }
		_ = json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&p)
		hint := ""
		if resp.StatusCode == http.StatusUnauthorized {
			hint = fmt.Sprintf(" (set $%s to an API key or JWT with the infer scope)", EnvAPIKey)
		}
		return 0, fmt.Errorf("%s: %s: %s%s", rawURL, resp.Status, p.Detail, hint)
	}
	body := &countingReader{r: io.LimitReader(resp.Body, lim.Bytes+1)}
	w := &limitedDir{dir: dir, lim: lim}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	switch mt {
	case "application/x-tar":
		err = untar(body, w)
	case "application/zip":
		err = unzip(body, dir, w)
	default:
		return 0, fmt.Errorf("%s: answered %q, not a tar or zip review export", rawURL, mt)
	}
	if body.n > lim.Bytes {
		err = errExportLimit // whatever the cut-off archive made the reader say
	}
	return w.files, err
}

// countingReader counts what was read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// limitedDir writes archive entries into dir within the limits.
type limitedDir struct {
	dir     string
	lim     reviewLimits
	files   int
	written int64
}

var errExportLimit = errors.New("the review export is larger than --max-bytes")

func (d *limitedDir) write(name string, r io.Reader) error {
	if name == "" || strings.ContainsAny(name, `/\`) || strings.HasPrefix(name, ".") || !filepath.IsLocal(name) {
		return fmt.Errorf("the review export holds an entry named %q; want plain file names", name)
	}
	if d.files++; d.files > d.lim.Entries {
		return fmt.Errorf("the review export holds more than %d files", d.lim.Entries)
	}
	f, err := os.OpenFile(filepath.Join(d.dir, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	n, err := io.Copy(f, io.LimitReader(r, d.lim.Bytes-d.written+1))
	d.written += n
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && d.written > d.lim.Bytes {
		err = errExportLimit
	}
	return err
}

func untar(r io.Reader, d *limitedDir) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading the review export: %w", err)
		}
		switch h.Typeflag {
		case tar.TypeReg:
			if err := d.write(h.Name, tr); err != nil {
				return err
			}
		case tar.TypeXGlobalHeader:
		default:
			return fmt.Errorf("the review export holds %q, which is not a plain file", h.Name)
		}
	}
}

// unzip spools the archive to a file first (zip's directory is at its end).
func unzip(r io.Reader, dir string, d *limitedDir) error {
	tmp, err := os.CreateTemp(dir, ".export-*.zip")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	n, err := io.Copy(tmp, r)
	if err != nil {
		return err
	}
	if n > d.lim.Bytes {
		return errExportLimit
	}
	zr, err := zip.NewReader(tmp, n)
	if err != nil {
		return fmt.Errorf("reading the review export: %w", err)
	}
	for _, f := range zr.File {
		if !f.Mode().IsRegular() {
			return fmt.Errorf("the review export holds %q, which is not a plain file", f.Name)
		}
		rc, err := f.Open()
		if err != nil {
			return err
		}
		err = d.write(f.Name, rc)
		rc.Close()
		if err != nil {
			return err
		}
	}
	return nil
}
