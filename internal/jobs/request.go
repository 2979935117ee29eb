package jobs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"

	"github.com/visionserve/visionserve/internal/imageio"
	"github.com/visionserve/visionserve/internal/ocr"
)

// Input is one submitted file.
type Input struct {
	Data     []byte
	Declared imageio.Format // what the client said, if anything
	PDF      bool
}

// Submission is a parsed POST /v1/jobs.
type Submission struct {
	Inputs         []Input
	OCR            OCROptions
	WebhookURL     string
	IdempotencyKey string
}

// RequestLimits bound ParseRequest.
type RequestLimits struct {
	MaxItems int
	MaxBytes int64 // the whole body
}

// File field names of a multipart submission; any part with a file name
// counts as well.
var fileFields = map[string]bool{"file": true, "image": true, "document": true}

// maxIdempotencyKey bounds the Idempotency-Key header.
const maxIdempotencyKey = 255

// ParseRequest reads a submission: the body is one file (an image, a
// multi-page TIFF or a PDF, by Content-Type or content) or multipart
// form data with one file per part; the query carries the OCR options and
// webhook_url. It never reads more than MaxBytes from body.
func ParseRequest(contentType string, query url.Values, idempotencyKey string, body io.Reader, lim RequestLimits) (*Submission, error) {
	sub := &Submission{IdempotencyKey: idempotencyKey}
	if err := parseQuery(query, sub); err != nil {
		return nil, err
	}
	if len(idempotencyKey) > maxIdempotencyKey || !printable(idempotencyKey) {
		return nil, errorf(ErrBadRequest, "Idempotency-Key must be at most %d printable ASCII characters", maxIdempotencyKey)
	}
	// One byte past the limit tells "too large" from "exactly the limit".
	limited := &io.LimitedReader{R: body, N: lim.MaxBytes + 1}
	mt, params, _ := mime.ParseMediaType(contentType)
	if mt == "multipart/form-data" {
		if params["boundary"] == "" {
			return nil, errorf(ErrBadRequest, "multipart body without a boundary")
		}
		if err := readMultipart(multipart.NewReader(limited, params["boundary"]), sub, lim); err != nil {
			if limited.N <= 0 {
				return nil, tooLarge(lim)
			}
			return nil, err
		}
	} else {
		in, err := readOne(contentType, limited)
		if err != nil {
			return nil, err
		}
		sub.Inputs = append(sub.Inputs, in)
	}
	if limited.N <= 0 {
		return nil, tooLarge(lim)
	}
	if len(sub.Inputs) == 0 {
		return nil, errorf(ErrBadRequest, "no files: send one as the body, or multipart parts named file")
	}
	return sub, nil
}

func tooLarge(lim RequestLimits) error {
	return errorf(ErrTooLarge, "the submission exceeds %d bytes", lim.MaxBytes)
}

func parseQuery(q url.Values, sub *Submission) error {
	for k, v := range q {
		switch k {
		case "model", "version", "lang", "mode", "rotate", "webhook_url":
			if len(v) != 1 {
				return errorf(ErrBadRequest, "query parameter %s given %d times", k, len(v))
			}
		default:
			return errorf(ErrBadRequest, "unknown query parameter %q (use model, version, lang, mode, rotate, webhook_url)", k)
		}
	}
	mode, err := ocr.ParseMode(q.Get("mode"))
	if err != nil {
		return errorf(ErrBadRequest, "%v", err)
	}
	sub.OCR = OCROptions{Model: q.Get("model"), Version: q.Get("version"), Lang: q.Get("lang"), Mode: mode}
	switch q.Get("rotate") {
	case "", "auto":
	case "off":
		sub.OCR.NoRotate = true
	default:
		return errorf(ErrBadRequest, "rotate=%q; use auto or off", q.Get("rotate"))
	}
	for _, s := range []string{sub.OCR.Model, sub.OCR.Version, sub.OCR.Lang} {
		if len(s) > 128 || !printable(s) {
			return errorf(ErrBadRequest, "model, version and lang are at most 128 printable characters")
		}
	}
	if u := q.Get("webhook_url"); u != "" {
		if err := validateWebhookURL(u); err != nil {
			return errorf(ErrBadRequest, "%v", err)
		}
		sub.WebhookURL = u
	}
	return nil
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func readMultipart(mr *multipart.Reader, sub *Submission, lim RequestLimits) error {
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return err
			}
			return errorf(ErrBadRequest, "malformed multipart body: %v", err)
		}
		if !fileFields[part.FormName()] && part.FileName() == "" {
			// Not a file: skip it (its bytes count against the limit).
			if _, err := io.Copy(io.Discard, part); err != nil {
				return errorf(ErrBadRequest, "malformed multipart body: %v", err)
			}
			continue
		}
		if len(sub.Inputs) == lim.MaxItems {
			return errorf(ErrTooLarge, "more than %d files; the limit is %d per job", lim.MaxItems, lim.MaxItems)
		}
		in, err := readOne(part.Header.Get("Content-Type"), part)
		if err != nil {
			return err
		}
		sub.Inputs = append(sub.Inputs, in)
	}
}

func readOne(contentType string, r io.Reader) (Input, error) {
	var in Input
	mt, _, _ := mime.ParseMediaType(contentType)
	pdfDeclared := mt == "application/pdf"
	if !pdfDeclared {
		declared, err := imageio.CheckMediaType(contentType)
		if err != nil {
			detail := err.Error()
			var ie *imageio.Error
			if errors.As(err, &ie) {
				detail = ie.Detail
			}
			return in, inputError(imageio.ErrUnsupported, "%s; jobs also take PDFs (application/pdf)", detail)
		}
		in.Declared = declared
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(r); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return in, errorf(ErrTooLarge, "the submission exceeds %d bytes", mbe.Limit)
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return in, err // the transport's deadline: its own answer
		}
		return in, errorf(ErrBadRequest, "reading the body: %v", err)
	}
	in.Data = buf.Bytes()
	in.PDF = imageio.IsPDF(in.Data)
	if pdfDeclared && !in.PDF {
		return in, inputError(imageio.ErrUndecodable, "declared application/pdf but the data does not start with %%PDF-")
	}
	if in.PDF && in.Declared != "" {
		return in, inputError(imageio.ErrUndecodable, "declared %s but the data is a PDF", in.Declared)
	}
	return in, nil
}

// inputError is an input error in the decoder's own type, so transports
// map it like the same error from a synchronous request.
func inputError(kind error, format string, args ...any) error {
	return &imageio.Error{Kind: kind, Detail: fmt.Sprintf(format, args...)}
}
