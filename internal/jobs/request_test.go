package jobs_test

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"mime/multipart"
	"net/textproto"
	"net/url"
	"strings"
	"testing"

	"github.com/visionserve/visionserve/internal/imageio"
	"github.com/visionserve/visionserve/internal/imageio/imagetest"
	"github.com/visionserve/visionserve/internal/jobs"
	"github.com/visionserve/visionserve/internal/jobs/jobstest"
)

type part struct {
	field, filename, contentType string
	data                         []byte
}

func multipartBody(parts ...part) (string, []byte) {
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for _, p := range parts {
		h := textproto.MIMEHeader{}
		cd := fmt.Sprintf(`form-data; name=%q`, p.field)
		if p.filename != "" {
			cd += fmt.Sprintf(`; filename=%q`, p.filename)
		}
		h.Set("Content-Disposition", cd)
		if p.contentType != "" {
			h.Set("Content-Type", p.contentType)
		}
		w, _ := mw.CreatePart(h)
		w.Write(p.data)
	}
	mw.Close()
	return mw.FormDataContentType(), b.Bytes()
}

func TestParseRequest(t *testing.T) {
	img := png(t, 20, 20)
	pdf := jobstest.PDF([]image.Image{imagetest.Marked(20, 20)}, 72)
	mpCT, mp := multipartBody(
		part{"file", "a.png", "image/png", img},
		part{"note", "", "text/plain", []byte("ignored")},
		part{"document", "b.pdf", "application/pdf", pdf},
		part{"anything", "c.png", "", img},
	)
	lim := jobs.RequestLimits{MaxItems: 5, MaxBytes: 1 << 20}
	for _, tc := range []struct {
		name, ct, query, key string
		body                 []byte
		lim                  *jobs.RequestLimits
		want                 error
		items                int
	}{
		{"raw png", "image/png", "", "", img, nil, nil, 1},
		{"raw pdf", "application/pdf", "", "", pdf, nil, nil, 1},
		{"raw pdf, no type", "", "", "", pdf, nil, nil, 1},
		{"multipart", mpCT, "model=ocr-eng&mode=page&rotate=off&webhook_url=https%3A%2F%2Fexample.com%2Fh", "key-1", mp, nil, nil, 3},
		{"too many files", mpCT, "", "", mp, &jobs.RequestLimits{MaxItems: 2, MaxBytes: 1 << 20}, jobs.ErrTooLarge, 0},
		{"too many bytes", mpCT, "", "", mp, &jobs.RequestLimits{MaxItems: 5, MaxBytes: 100}, jobs.ErrTooLarge, 0},
		{"raw too many bytes", "image/png", "", "", img, &jobs.RequestLimits{MaxItems: 5, MaxBytes: int64(len(img)) - 1}, jobs.ErrTooLarge, 0},
		{"raw exactly the limit", "image/png", "", "", img, &jobs.RequestLimits{MaxItems: 5, MaxBytes: int64(len(img))}, nil, 1},
		{"no files", func() string { ct, _ := multipartBody(part{"note", "", "", []byte("x")}); return ct }(), "", "", func() []byte { _, b := multipartBody(part{"note", "", "", []byte("x")}); return b }(), nil, jobs.ErrBadRequest, 0},
		{"multipart without boundary", "multipart/form-data", "", "", mp, nil, jobs.ErrBadRequest, 0},
		{"malformed multipart", "multipart/form-data; boundary=zz", "", "", []byte("nonsense"), nil, jobs.ErrBadRequest, 0},
		{"svg", "image/svg+xml", "", "", []byte("<svg/>"), nil, imageio.ErrUnsupported, 0},
		{"pdf type, not a pdf", "application/pdf", "", "", img, nil, imageio.ErrUndecodable, 0},
		{"png type, a pdf", "image/png", "", "", pdf, nil, imageio.ErrUndecodable, 0},
		{"unknown query", "image/png", "color=red", "", img, nil, jobs.ErrBadRequest, 0},
		{"repeated query", "image/png", "mode=page&mode=line", "", img, nil, jobs.ErrBadRequest, 0},
		{"bad mode", "image/png", "mode=sideways", "", img, nil, jobs.ErrBadRequest, 0},
		{"bad rotate", "image/png", "rotate=maybe", "", img, nil, jobs.ErrBadRequest, 0},
		{"relative webhook", "image/png", "webhook_url=%2Fhook", "", img, nil, jobs.ErrBadRequest, 0},
		{"webhook with credentials", "image/png", "webhook_url=https%3A%2F%2Fu%3Ap%40example.com%2F", "", img, nil, jobs.ErrBadRequest, 0},
		{"ftp webhook", "image/png", "webhook_url=ftp%3A%2F%2Fexample.com%2F", "", img, nil, jobs.ErrBadRequest, 0},
		{"control character in key", "image/png", "", "a\nb", img, nil, jobs.ErrBadRequest, 0},
		{"long key", "image/png", "", strings.Repeat("k", 256), img, nil, jobs.ErrBadRequest, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, _ := url.ParseQuery(tc.query)
			l := lim
			if tc.lim != nil {
				l = *tc.lim
			}
			sub, err := jobs.ParseRequest(tc.ct, q, tc.key, bytes.NewReader(tc.body), l)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if tc.want != nil {
				return
			}
			if len(sub.Inputs) != tc.items {
				t.Fatalf("%d items, want %d", len(sub.Inputs), tc.items)
			}
			if tc.name == "multipart" {
				if !sub.Inputs[1].PDF || sub.Inputs[0].Declared != imageio.PNG || sub.OCR.Model != "ocr-eng" || !sub.OCR.NoRotate ||
					sub.WebhookURL != "https://example.com/h" || sub.IdempotencyKey != "key-1" {
					t.Fatalf("submission %+v", sub)
				}
			}
		})
	}
}

// FuzzParseRequest: any body, type and query either parse within the
// limits or fail with a classified error.
func FuzzParseRequest(f *testing.F) {
	ct, mp := multipartBody(part{"file", "a.png", "image/png", []byte("\x89PNG\r\n\x1a\nxx")}, part{"x", "", "", []byte("y")})
	f.Add(ct, "mode=page", mp)
	f.Add("image/png", "", []byte("\x89PNG\r\n\x1a\n"))
	f.Add("application/pdf", "webhook_url=http%3A%2F%2Fa", []byte("%PDF-1.4\n"))
	f.Add("multipart/form-data; boundary=b", "", []byte("--b\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nx\r\n--b--\r\n"))
	f.Fuzz(func(t *testing.T, contentType, query string, body []byte) {
		q, err := url.ParseQuery(query)
		if err != nil {
			return
		}
		lim := jobs.RequestLimits{MaxItems: 3, MaxBytes: 4096}
		sub, err := jobs.ParseRequest(contentType, q, "", bytes.NewReader(body), lim)
		if err != nil {
			for _, kind := range []error{jobs.ErrBadRequest, jobs.ErrTooLarge, imageio.ErrUnsupported, imageio.ErrUndecodable} {
				if errors.Is(err, kind) {
					return
				}
			}
			t.Fatalf("unclassified error %v", err)
		}
		if len(sub.Inputs) == 0 || len(sub.Inputs) > lim.MaxItems {
			t.Fatalf("%d inputs", len(sub.Inputs))
		}
		total := 0
		for _, in := range sub.Inputs {
			total += len(in.Data)
		}
		if int64(total) > lim.MaxBytes {
			t.Fatalf("%d bytes kept, limit %d", total, lim.MaxBytes)
		}
	})
}
