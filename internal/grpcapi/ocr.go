package grpcapi

import (
	"bytes"
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/visionserve/visionserve/internal/imageio"
	"github.com/visionserve/visionserve/internal/ocr"
	"github.com/visionserve/visionserve/internal/render"
	v1 "github.com/visionserve/visionserve/proto/visionserve/v1"
)

// Request and response metadata keys: the HTTP headers of those names.
const (
	mdModelName    = "x-model-name"
	mdModelVersion = "x-model-version"
)

// ocrService implements visionserve.v1.OCR on ocr.Service, as POST
// /v1/ocr does.
type ocrService struct {
	v1.UnimplementedOCRServer
	ocr    *ocr.Service
	sticky string // the sticky routing header's name; "": off
}

func (s *ocrService) Recognize(ctx context.Context, req *v1.RecognizeRequest) (*v1.RecognizeResponse, error) {
	opt, err := ocr.Params{Model: req.GetModel(), Version: req.GetVersion(), Lang: req.GetLang(),
		Mode: req.GetMode(), Rotate: req.GetRotate(), Dewarp: req.GetDewarp()}.Options()
	if err != nil {
		return nil, err
	}
	format, err := render.Lookup(req.GetFormat())
	if err != nil {
		return nil, err
	}
	// The request field wins over the metadata, as HTTP's query parameter
	// wins over its header.
	md, _ := metadata.FromIncomingContext(ctx)
	if opt.Version == "" {
		opt.Version = first(md, mdModelVersion)
	}
	if s.sticky != "" {
		if opt.Key = req.GetRoutingKey(); opt.Key == "" {
			opt.Key = first(md, s.sticky)
		}
	}
	declared, err := checkImage(req.GetImage(), req.GetContentType(), s.ocr.Limits())
	if err != nil {
		return nil, err
	}
	in := ocr.Input{Data: req.GetImage(), Declared: declared}
	res, err := s.ocr.Recognize(ctx, in, opt)
	if err != nil {
		return nil, err
	}
	out := encodeOCR(res)
	if format.Name != render.Default {
		// Every format but json comes as a document; the pages are in it.
		var doc bytes.Buffer
		if err := format.Render(ctx, &doc, res, render.InputPages(in, s.ocr.Limits())); err != nil {
			return nil, err
		}
		out.Pages, out.Document, out.ContentType = nil, doc.Bytes(), format.ContentType()
	}
	_ = grpc.SetHeader(ctx, metadata.Pairs(mdModelName, res.Model.Name, mdModelVersion, res.Model.Version))
	return out, nil
}

// checkImage checks an image field as the HTTP transport checks a body
// before the core sees it: the declared media type, then the size.
func checkImage(data []byte, contentType string, lim imageio.Limits) (imageio.Format, error) {
	declared, err := imageio.CheckMediaType(contentType)
	if err != nil {
		return "", err
	}
	if n := int64(len(data)); n > lim.MaxBytes {
		return "", &imageio.Error{Kind: imageio.ErrTooLarge, Detail: fmt.Sprintf("the image is %d bytes; the limit is %d", n, lim.MaxBytes)}
	}
	return declared, nil
}

// first returns the first value of key in md ("" if none).
func first(md metadata.MD, key string) string {
	if v := md.Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}

// encodeOCR converts the core's result.
func encodeOCR(res *ocr.Result) *v1.RecognizeResponse {
	out := &v1.RecognizeResponse{
		Model:      &v1.ModelRef{Name: res.Model.Name, Version: res.Model.Version},
		Text:       res.Text,
		Confidence: res.Confidence,
		TimingMs:   res.TimingMS,
		Tier:       res.Tier,
	}
	out.Pages = make([]*v1.Page, len(res.Pages))
	for i, p := range res.Pages {
		page := &v1.Page{Index: int32(p.Index), Width: int32(p.Width), Height: int32(p.Height), Angle: int32(p.Angle),
			Mode: p.Mode, Confidence: p.Confidence, Lines: make([]*v1.Line, len(p.Lines)), Dewarp: encodeDewarp(p.Dewarp)}
		for j, l := range p.Lines {
			line := &v1.Line{Text: l.Text, Confidence: l.Confidence, Box: quad(l.Box), Review: string(l.Review),
				Words: make([]*v1.Word, len(l.Words))}
			for k, w := range l.Words {
				line.Words[k] = &v1.Word{Text: w.Text, Confidence: w.Confidence, Box: quad(w.Box)}
			}
			page.Lines[j] = line
		}
		out.Pages[i] = page
	}
	return out
}

// encodeDewarp converts a page's correction; nil stays nil.
func encodeDewarp(d *ocr.Dewarp) *v1.Dewarp {
	if d == nil {
		return nil
	}
	out := &v1.Dewarp{Kind: d.Kind, Skew: d.Skew, Width: int32(d.Width), Height: int32(d.Height), Confidence: d.Confidence}
	if d.Quad != nil {
		out.Quad = quad(*d.Quad)
	}
	for _, row := range d.Homography {
		out.Homography = append(out.Homography, row[:]...)
	}
	return out
}

func quad(q ocr.Quad) []*v1.Point {
	out := make([]*v1.Point, len(q))
	for i, p := range q {
		out[i] = &v1.Point{X: p[0], Y: p[1]}
	}
	return out
}
