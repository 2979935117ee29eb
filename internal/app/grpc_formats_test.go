package app_test

import (
	"bytes"
	"context"
	"net/http"
	"regexp"
	"testing"

	"github.com/visionserve/visionserve/internal/app/apptest"
	v1 "github.com/visionserve/visionserve/proto/visionserve/v1"
)

// OCR.Recognize with a document format answers with the document /v1/ocr
// gives for that format (bytes and content type), and no pages; json keeps
// its pages and sends no document.
func TestIntegrationGRPCDocumentFormatsMatchHTTP(t *testing.T) {
	srv := apptest.Start(t, nil)
	client := v1.NewOCRClient(grpcConn(t, srv.GRPCAddr))
	data := sharedFile(t, "data/ocr/pages/phototest.tif")
	// Parts that differ between two renderings of one result: PAGE's
	// timestamps; a PDF's dates and ID.
	volatile := regexp.MustCompile(`<(Created|LastChange)>[^<]*<|\(D:[0-9]+Z\)|/ID \[<[0-9a-f]+> <[0-9a-f]+>\]`)
	for _, format := range []string{"text", "hocr", "alto", "page", "pdf"} {
		t.Run(format, func(t *testing.T) {
			code, hdr, body := httpCall(t, http.MethodPost, srv.URL+"/v1/ocr?format="+format, "image/tiff", data)
			if code != http.StatusOK {
				t.Fatalf("HTTP %d: %s", code, body)
			}
			resp, err := client.Recognize(context.Background(), &v1.RecognizeRequest{Image: data, Format: format})
			if err != nil {
				t.Fatalf("gRPC: %v", err)
			}
			if resp.ContentType != hdr.Get("Content-Type") || len(resp.Pages) != 0 || resp.Text == "" || resp.Model.GetName() == "" {
				t.Errorf("content type %q (HTTP %q), %d pages, text %q, model %v", resp.ContentType, hdr.Get("Content-Type"), len(resp.Pages), resp.Text, resp.Model)
			}
			if got, want := volatile.ReplaceAll(resp.Document, nil), volatile.ReplaceAll(body, nil); !bytes.Equal(got, want) {
				t.Errorf("the gRPC document (%d bytes) differs from the HTTP body (%d bytes)", len(resp.Document), len(body))
			}
		})
	}
	resp, err := client.Recognize(context.Background(), &v1.RecognizeRequest{Image: data})
	if err != nil || len(resp.Pages) != 1 || resp.Document != nil || resp.ContentType != "" {
		t.Fatalf("json: %v, %d pages, %d document bytes, %q", err, len(resp.GetPages()), len(resp.GetDocument()), resp.GetContentType())
	}
}
