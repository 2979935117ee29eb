package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/image/draw"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/visionserve/visionserve/internal/app/apptest"
	"github.com/visionserve/visionserve/internal/config"
	"github.com/visionserve/visionserve/internal/face"
	"github.com/visionserve/visionserve/internal/gallery"
	"github.com/visionserve/visionserve/internal/ocr"
	"github.com/visionserve/visionserve/internal/testenv"
	v1 "github.com/visionserve/visionserve/proto/visionserve/v1"
)

// sharedFile reads a file of the shared data directory.
func sharedFile(t *testing.T, rel string) []byte {
	t.Helper()
	data, err := os.ReadFile(testenv.Shared(t, rel))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// httpCall sends one request and returns the status, the X-Model-Version
// header and the body.
func httpCall(t *testing.T, method, url, contentType string, body []byte) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, data
}

// sameJSON fails the test unless want and got are deeply equal, printing
// both as JSON.
// faceModelsFrom is the core's UsedModels of a gRPC face answer.
func faceModelsFrom(m *v1.FaceModels) face.UsedModels {
	u := face.UsedModels{Detector: face.ModelRef{Name: m.GetDetector().GetName(), Version: m.GetDetector().GetVersion()}}
	if e := m.GetEmbedder(); e != nil {
		u.Embedder = &face.EmbedderRef{ModelRef: face.ModelRef{Name: e.GetName(), Version: e.GetVersion()}, ID: e.GetId()}
	}
	return u
}

func sameJSON(t *testing.T, what string, want, got any) {
	t.Helper()
	if !reflect.DeepEqual(want, got) {
		w, _ := json.Marshal(want)
		g, _ := json.Marshal(got)
		t.Errorf("%s differ:\nHTTP: %.2000s\ngRPC: %.2000s", what, w, g)
	}
}

// ocrFromProto is the inverse of the transport's encoding: the gRPC answer
// as the core's result, to compare with the HTTP JSON decoded into one.
func ocrFromProto(t *testing.T, r *v1.RecognizeResponse) ocr.Result {
	t.Helper()
	quad := func(pts []*v1.Point) ocr.Quad {
		var q ocr.Quad
		if len(pts) != 4 {
			t.Errorf("a box of %d points", len(pts))
			return q
		}
		for i, p := range pts {
			q[i] = ocr.Point{p.GetX(), p.GetY()}
		}
		return q
	}
	res := ocr.Result{Model: ocr.ModelRef{Name: r.GetModel().GetName(), Version: r.GetModel().GetVersion()},
		Text: r.GetText(), Confidence: r.GetConfidence(), TimingMS: r.GetTimingMs(), Tier: r.GetTier(), Pages: []ocr.Page{}}
	for _, p := range r.GetPages() {
		page := ocr.Page{Index: int(p.GetIndex()), Width: int(p.GetWidth()), Height: int(p.GetHeight()), Angle: int(p.GetAngle()),
			Mode: p.GetMode(), Confidence: p.GetConfidence(), Lines: []ocr.Line{}}
		if d := p.GetDewarp(); d != nil {
			page.Dewarp = &ocr.Dewarp{Kind: d.GetKind(), Skew: d.GetSkew(), Width: int(d.GetWidth()), Height: int(d.GetHeight()), Confidence: d.GetConfidence()}
			if len(d.GetQuad()) > 0 {
				q := quad(d.GetQuad())
				page.Dewarp.Quad = &q
			}
			if h := d.GetHomography(); len(h) == 9 {
				page.Dewarp.Homography = [3][3]float64{{h[0], h[1], h[2]}, {h[3], h[4], h[5]}, {h[6], h[7], h[8]}}
			} else {
				t.Errorf("a homography of %d numbers", len(h))
			}
		}
		for _, l := range p.GetLines() {
			line := ocr.Line{Text: l.GetText(), Confidence: l.GetConfidence(), Box: quad(l.GetBox()), Review: ocr.Tier(l.GetReview()), Words: []ocr.Word{}}
			for _, w := range l.GetWords() {
				line.Words = append(line.Words, ocr.Word{Text: w.GetText(), Confidence: w.GetConfidence(), Box: quad(w.GetBox())})
			}
			page.Lines = append(page.Lines, line)
		}
		res.Pages = append(res.Pages, page)
	}
	return res
}

// halfPhoto returns the shared photo at file at half its size, as a JPEG
// small enough for the 60,000-byte limit of the test that reads it.
func halfPhoto(t *testing.T, file string) []byte {
	t.Helper()
	src, err := jpeg.Decode(bytes.NewReader(sharedFile(t, file)))
	if err != nil {
		t.Fatal(err)
	}
	b := src.Bounds()
	dst := image.NewGray(image.Rect(0, 0, b.Dx()/2, b.Dy()/2))
	draw.ApproxBiLinear.Scale(dst, dst.Rect, src, b, draw.Src, nil)
	var out bytes.Buffer
	if err := jpeg.Encode(&out, dst, &jpeg.Options{Quality: 70}); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// withoutTimings returns r without its timings, checking first that it
// has the same stages as want.
func withoutTimings(t *testing.T, want, r ocr.Result) ocr.Result {
	t.Helper()
	if len(r.TimingMS) != len(want.TimingMS) {
		t.Errorf("timing stages %v, HTTP has %v", r.TimingMS, want.TimingMS)
	}
	for k := range want.TimingMS {
		if _, ok := r.TimingMS[k]; !ok {
			t.Errorf("no %q timing over gRPC", k)
		}
	}
	r.TimingMS = nil
	return r
}

// The must-show test: the same images read over HTTP POST /v1/ocr and over
// gRPC OCR/Recognize give identical results (text, boxes, confidences,
// review tiers, pages, quality tier, model version), with the same
// options, version pins and errors.
func TestIntegrationGRPCOCRMatchesHTTP(t *testing.T) {
	srv := apptest.Start(t, func(c *config.Config) {
		c.Limits.MaxBytes = 60000
		// A cheaper tier (never entered: ocr.tier is off) makes results
		// name their quality tier.
		c.Models[0].CheapTier = &ocr.CheapTier{MaxSide: 400, SkipOrientation: true}
	})
	conn := grpcConn(t, srv.GRPCAddr)
	client := v1.NewOCRClient(conn)
	ctx := context.Background()

	lines := testenv.Shared(t, "data/ocr/lines/book")
	type image struct {
		name, file, contentType string
		query                   url.Values
		data                    []byte // instead of file
	}
	images := []image{
		{"page", "data/ocr/pages/phototest.tif", "image/tiff", nil, nil},
		{"page turned right", "data/ocr/pages/phototest-rotated-R.png", "image/png", nil, nil},
		{"page upside down, rotate off", "data/ocr/pages/phototest-rotated-180.png", "", url.Values{"rotate": {"off"}}, nil},
		{"page in block mode", "data/ocr/pages/phototest.tif", "", url.Values{"mode": {"block"}}, nil},
		{"photographed page, flattened", "", "image/jpeg", url.Values{"dewarp": {"auto"}}, halfPhoto(t, "data/ocr/photo-pages/11.jpg")},
	}
	for _, dir := range []string{"0005", "0011", "0026"} {
		names, _ := filepath.Glob(filepath.Join(lines, dir, "*.bin.png"))
		if len(names) == 0 {
			t.Fatalf("no line images in %s", dir)
		}
		rel, _ := filepath.Rel(testenv.SharedDir(), names[0])
		images = append(images, image{"line " + dir, rel, "image/png", nil, nil},
			image{"line " + dir + " in line mode, pinned", rel, "", url.Values{"mode": {"line"}, "version": {"1"}}, nil})
	}
	for _, img := range images {
		t.Run(img.name, func(t *testing.T) {
			data := img.data
			if data == nil {
				data = sharedFile(t, img.file)
			}
			code, hdr, body := httpCall(t, http.MethodPost, srv.URL+"/v1/ocr?"+img.query.Encode(), img.contentType, data)
			if code != http.StatusOK {
				t.Fatalf("HTTP %d: %s", code, body)
			}
			var want ocr.Result
			if err := json.Unmarshal(body, &want); err != nil {
				t.Fatal(err)
			}
			var header metadata.MD
			resp, err := client.Recognize(ctx, &v1.RecognizeRequest{Image: data, ContentType: img.contentType,
				Mode: img.query.Get("mode"), Rotate: img.query.Get("rotate"), Version: img.query.Get("version"), Dewarp: img.query.Get("dewarp")},
				grpc.Header(&header))
			if err != nil {
				t.Fatalf("gRPC: %v", err)
			}
			got := withoutTimings(t, want, ocrFromProto(t, resp))
			want.TimingMS = nil
			sameJSON(t, "results", want, got)
			if len(strings.TrimSpace(want.Text)) < 10 || len(want.Pages) == 0 || len(want.Pages[0].Lines) == 0 || want.Pages[0].Lines[0].Review == "" ||
				want.Tier != "full" {
				t.Errorf("a result that proves little: %s", body)
			}
			for _, k := range []string{"X-Model-Name", "X-Model-Version"} {
				if v := header.Get(k); len(v) != 1 || v[0] != hdr.Get(k) || v[0] == "" {
					t.Errorf("%s: gRPC header %q, HTTP %q", k, v, hdr.Get(k))
				}
			}
		})
	}
	if t.Failed() {
		return
	}

	page := sharedFile(t, "data/ocr/pages/phototest-rotated-R.png")
	t.Run("text format", func(t *testing.T) {
		_, _, text := httpCall(t, http.MethodPost, srv.URL+"/v1/ocr?format=text", "", page)
		resp, err := client.Recognize(ctx, &v1.RecognizeRequest{Image: page, Format: "text"})
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetText()+"\n" != string(text) || len(resp.GetPages()) != 0 || resp.GetModel().GetVersion() == "" {
			t.Errorf("gRPC text %q (%d pages), HTTP %q", resp.GetText(), len(resp.GetPages()), text)
		}
	})
	t.Run("version pin in metadata", func(t *testing.T) {
		md := metadata.NewOutgoingContext(ctx, metadata.Pairs("x-model-version", "9"))
		if _, err := client.Recognize(md, &v1.RecognizeRequest{Image: page}); status.Code(err) != codes.NotFound {
			t.Errorf("pinned to version 9 in metadata: %v", err)
		}
		// The request field wins, as the query parameter wins over the header.
		if _, err := client.Recognize(md, &v1.RecognizeRequest{Image: page, Version: "1"}); err != nil {
			t.Errorf("pinned to 1 in the request, 9 in metadata: %v", err)
		}
	})

	// Errors: the same classification on both transports.
	pdf := []byte("%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n")
	for _, tc := range []struct {
		name   string
		query  url.Values
		ct     string
		data   []byte
		status int
		code   codes.Code
	}{
		{"garbage bytes", nil, "", []byte("this is not an image at all"), 415, codes.InvalidArgument},
		{"truncated PNG", nil, "image/png", page[:len(page)/2], 400, codes.InvalidArgument},
		{"empty", nil, "", nil, 400, codes.InvalidArgument},
		{"a PDF", nil, "", pdf, 415, codes.InvalidArgument},
		{"declared type not an image", nil, "text/plain", page, 415, codes.InvalidArgument},
		{"garbage declared as PNG", nil, "image/png", []byte("this is not an image at all"), 400, codes.InvalidArgument},
		{"over max_bytes", nil, "", bytes.Repeat([]byte{0xff}, 60001), 413, codes.ResourceExhausted},
		{"unknown model", url.Values{"model": {"nope"}}, "", page, 404, codes.NotFound},
		{"language nobody reads", url.Values{"lang": {"klingon"}}, "", page, 404, codes.NotFound},
		{"version not served", url.Values{"version": {"9"}}, "", page, 404, codes.NotFound},
		{"bad mode", url.Values{"mode": {"paragraph"}}, "", page, 400, codes.InvalidArgument},
		{"bad rotate", url.Values{"rotate": {"sometimes"}}, "", page, 400, codes.InvalidArgument},
		{"bad format", url.Values{"format": {"xml"}}, "", page, 400, codes.InvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, body := httpCall(t, http.MethodPost, srv.URL+"/v1/ocr?"+tc.query.Encode(), tc.ct, tc.data)
			var p struct{ Detail string }
			_ = json.Unmarshal(body, &p)
			_, err := client.Recognize(ctx, &v1.RecognizeRequest{Image: tc.data, ContentType: tc.ct, Model: tc.query.Get("model"),
				Lang: tc.query.Get("lang"), Version: tc.query.Get("version"), Mode: tc.query.Get("mode"),
				Rotate: tc.query.Get("rotate"), Format: tc.query.Get("format")})
			st := status.Convert(err)
			if code != tc.status || st.Code() != tc.code {
				t.Errorf("HTTP %d (want %d) %s; gRPC %v %q (want %v)", code, tc.status, body, st.Code(), st.Message(), tc.code)
			}
			if st.Message() == "" || strings.Contains(st.Message(), "\n") {
				t.Errorf("gRPC message %q is not one line", st.Message())
			}
			// The core's failures read the same on both transports.
			if tc.status != 413 && st.Message() != p.Detail {
				t.Errorf("gRPC %q, HTTP %q", st.Message(), p.Detail)
			}
		})
	}
	t.Run("message over the receive limit", func(t *testing.T) {
		_, err := client.Recognize(ctx, &v1.RecognizeRequest{Image: make([]byte, 2*60000+64<<10)}, grpc.MaxCallSendMsgSize(1<<20))
		if status.Code(err) != codes.ResourceExhausted {
			t.Errorf("%v", err)
		}
	})
	t.Run("client deadline", func(t *testing.T) {
		dctx, cancel := context.WithTimeout(ctx, time.Millisecond)
		defer cancel()
		if _, err := client.Recognize(dctx, &v1.RecognizeRequest{Image: sharedFile(t, "data/ocr/pages/phototest.tif")}); status.Code(err) != codes.DeadlineExceeded {
			t.Errorf("%v", err)
		}
	})

	// The gRPC calls were counted; the core's stage and confidence metrics
	// saw them as they see HTTP requests.
	metrics := scrape(t, srv.URL)
	for _, want := range []string{
		`visionserve_grpc_requests_total{code="OK",method="/visionserve.v1.OCR/Recognize"}`,
		`visionserve_grpc_requests_total{code="NotFound",method="/visionserve.v1.OCR/Recognize"}`,
		`visionserve_grpc_requests_total{code="ResourceExhausted",method="/visionserve.v1.OCR/Recognize"}`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// The face API over gRPC answers what it answers over HTTP: detect,
// verify, identify and subjects on the shared face images, galleries
// changed over one transport and read over the other, the same errors.
func TestIntegrationGRPCFacesMatchHTTP(t *testing.T) {
	srv := apptest.Start(t, apptest.WithFace(t))
	client := v1.NewFacesClient(grpcConn(t, srv.GRPCAddr))
	ctx := context.Background()
	obama := sharedFile(t, "data/face/face_recognition-examples/knn_examples/train/obama/obama.jpg")
	obama2 := sharedFile(t, "data/face/face_recognition-examples/knn_examples/train/obama/obama2.jpg")
	biden := sharedFile(t, "data/face/face_recognition-examples/knn_examples/train/biden/biden.jpg")
	both := sharedFile(t, "data/face/face_recognition-examples/knn_examples/test/obama_and_biden.jpg")
	orl := sharedFile(t, "data/face/orl-faces/s1/1.pgm")
	var blankBuf bytes.Buffer
	_ = png.Encode(&blankBuf, image.NewGray(image.Rect(0, 0, 100, 100)))
	blank := blankBuf.Bytes()

	ok := func(code int, body []byte, want int) {
		t.Helper()
		if code != want {
			t.Fatalf("HTTP %d, want %d: %s", code, want, body)
		}
	}
	decode := func(body []byte, v any) {
		t.Helper()
		if err := json.Unmarshal(body, v); err != nil {
			t.Fatalf("%v: %s", err, body)
		}
	}

	for _, tc := range []struct {
		name     string
		data     []byte
		maxFaces int
		atLeast  int
	}{
		{"two faces", both, 0, 2}, {"at most one", both, 1, 1}, {"one face", obama, 0, 1}, {"grey PGM", orl, 0, 1}, {"no face", blank, 0, 0},
	} {
		t.Run("detect "+tc.name, func(t *testing.T) {
			q := ""
			if tc.maxFaces > 0 {
				q = fmt.Sprintf("?max_faces=%d", tc.maxFaces)
			}
			code, _, body := httpCall(t, http.MethodPost, srv.URL+"/v1/faces/detect"+q, "", tc.data)
			ok(code, body, 200)
			var want face.DetectResult
			decode(body, &want)
			var header metadata.MD
			resp, err := client.Detect(ctx, &v1.DetectRequest{Image: tc.data, MaxFaces: int32(tc.maxFaces)}, grpc.Header(&header))
			if err != nil {
				t.Fatal(err)
			}
			if h := header.Get("x-face-detector"); len(h) != 1 || h[0] != want.Models.Detector.Name+"/"+want.Models.Detector.Version || header.Get("x-face-embedder") != nil {
				t.Errorf("metadata %v, models %+v", header, want.Models)
			}
			got := face.DetectResult{Models: faceModelsFrom(resp.GetModels()), Width: int(resp.GetWidth()), Height: int(resp.GetHeight()), Faces: []face.FaceBox{}}
			for _, f := range resp.GetFaces() {
				fb := face.FaceBox{Box: boxFrom(f.GetBox()), Score: f.GetScore()}
				if len(f.GetLandmarks()) != 5 {
					t.Fatalf("%d landmarks", len(f.GetLandmarks()))
				}
				for i, p := range f.GetLandmarks() {
					fb.Landmarks[i] = face.Point{p.GetX(), p.GetY()}
				}
				got.Faces = append(got.Faces, fb)
			}
			sameJSON(t, "detections", want, got)
			if len(want.Faces) < tc.atLeast || (tc.maxFaces > 0 && len(want.Faces) > tc.maxFaces) {
				t.Errorf("%d faces: %s", len(want.Faces), body)
			}
		})
	}

	for _, tc := range []struct {
		name      string
		a, b      []byte
		threshold *float64
		match     bool
	}{
		{"same person", obama, obama2, nil, true},
		{"different people at 0.3", obama, biden, ptr(0.3), false},
	} {
		t.Run("verify "+tc.name, func(t *testing.T) {
			q := ""
			if tc.threshold != nil {
				q = fmt.Sprintf("?threshold=%g", *tc.threshold)
			}
			ct, form := multipartImages(t, "a", tc.a, "b", tc.b)
			code, _, body := httpCall(t, http.MethodPost, srv.URL+"/v1/faces/verify"+q, ct, form)
			ok(code, body, 200)
			var want face.VerifyResult
			decode(body, &want)
			var header metadata.MD
			resp, err := client.Verify(ctx, &v1.VerifyRequest{A: tc.a, B: tc.b, Threshold: tc.threshold}, grpc.Header(&header))
			if err != nil {
				t.Fatal(err)
			}
			if h := header.Get("x-face-embedder"); want.Models.Embedder == nil || len(h) != 1 || h[0] != want.Models.Embedder.Name+"/"+want.Models.Embedder.Version {
				t.Errorf("metadata %v, models %+v", header, want.Models)
			}
			sameJSON(t, "verifications", want, face.VerifyResult{Models: faceModelsFrom(resp.GetModels()), Similarity: resp.GetSimilarity(), Match: resp.GetMatch(), Threshold: resp.GetThreshold()})
			if want.Match != tc.match {
				t.Errorf("match %v: %s", want.Match, body)
			}
		})
	}

	// A gallery created and filled over gRPC, read over both.
	created, err := client.CreateGallery(ctx, &v1.CreateGalleryRequest{Gallery: "staff"})
	if err != nil || created.GetExisted() || created.GetName() != "staff" {
		t.Fatalf("CreateGallery: %v %v", created, err)
	}
	code, _, body := httpCall(t, http.MethodPut, srv.URL+"/v1/galleries/staff", "", nil)
	ok(code, body, 200)
	var g struct {
		Name, Created   string
		Subjects, Faces int
	}
	decode(body, &g)
	if g.Name != created.GetName() || g.Created != created.GetCreated() || g.Subjects != 0 || g.Faces != 0 {
		t.Errorf("HTTP gallery %s, gRPC %v", body, created)
	}
	if again, err := client.CreateGallery(ctx, &v1.CreateGalleryRequest{Gallery: "staff"}); err != nil || !again.GetExisted() || again.GetCreated() != g.Created {
		t.Errorf("CreateGallery again: %v %v", again, err)
	}
	enrolled, err := client.Enroll(ctx, &v1.EnrollRequest{Gallery: "staff", Subject: "Barack Obama", Image: obama, ContentType: "image/jpeg"})
	if err != nil || len(enrolled.GetFaceId()) != 32 || enrolled.GetScore() <= 0 || enrolled.GetModels().GetEmbedder().GetId() == "" {
		t.Fatalf("Enroll: %v %v", enrolled, err)
	}
	code, _, body = httpCall(t, http.MethodPost, srv.URL+"/v1/galleries/staff/subjects/biden/faces", "image/jpeg", biden)
	ok(code, body, 201)
	var bidenFace face.EnrollResult
	decode(body, &bidenFace)

	subject := "/v1/galleries/staff/subjects/" + url.PathEscape("Barack Obama")
	code, _, body = httpCall(t, http.MethodGet, srv.URL+subject, "", nil)
	ok(code, body, 200)
	type faceInfo struct {
		FaceID  string `json:"face_id"`
		Created string `json:"created"`
	}
	var wantSubject struct {
		Gallery, Subject string
		Faces            []faceInfo
	}
	decode(body, &wantSubject)
	gotSubject, err := client.GetSubject(ctx, &v1.GetSubjectRequest{Gallery: "staff", Subject: "Barack Obama"})
	if err != nil {
		t.Fatal(err)
	}
	got := wantSubject
	got.Gallery, got.Subject, got.Faces = gotSubject.GetGallery(), gotSubject.GetSubject(), nil
	for _, f := range gotSubject.GetFaces() {
		got.Faces = append(got.Faces, faceInfo{FaceID: f.GetFaceId(), Created: f.GetCreated()})
	}
	sameJSON(t, "subjects", wantSubject, got)
	if len(got.Faces) != 1 || got.Faces[0].FaceID != enrolled.GetFaceId() {
		t.Errorf("subject %s, enrolled %s", body, enrolled.GetFaceId())
	}

	for _, tc := range []struct {
		name  string
		query url.Values
		req   *v1.IdentifyRequest
	}{
		{"top 2", url.Values{"top_k": {"2"}}, &v1.IdentifyRequest{TopK: 2}},
		{"one face at 0.2", url.Values{"max_faces": {"1"}, "threshold": {"0.2"}}, &v1.IdentifyRequest{MaxFaces: 1, Threshold: ptr(0.2)}},
		{"threshold 1", url.Values{"threshold": {"1"}}, &v1.IdentifyRequest{Threshold: ptr(1.0)}},
	} {
		t.Run("identify "+tc.name, func(t *testing.T) {
			code, _, body := httpCall(t, http.MethodPost, srv.URL+"/v1/galleries/staff/identify?"+tc.query.Encode(), "image/jpeg", both)
			ok(code, body, 200)
			var want face.IdentifyResult
			decode(body, &want)
			tc.req.Gallery, tc.req.Image = "staff", both
			resp, err := client.Identify(ctx, tc.req)
			if err != nil {
				t.Fatal(err)
			}
			got := face.IdentifyResult{Models: faceModelsFrom(resp.GetModels()), Faces: []face.IdentifiedFace{}}
			for _, f := range resp.GetFaces() {
				idf := face.IdentifiedFace{Box: boxFrom(f.GetBox()), Score: f.GetScore(), Matches: []gallery.Match{}}
				for _, m := range f.GetMatches() {
					idf.Matches = append(idf.Matches, gallery.Match{Subject: m.GetSubject(), Similarity: m.GetSimilarity()})
				}
				got.Faces = append(got.Faces, idf)
			}
			sameJSON(t, "identifications", want, got)
			if len(want.Faces) == 0 {
				t.Errorf("no faces: %s", body)
			}
		})
	}

	// Errors: the same classification on both transports.
	ctA, onlyA := multipartImages(t, "a", obama)
	ctBlank, withBlank := multipartImages(t, "a", obama, "b", blank)
	for _, tc := range []struct {
		name   string
		method string
		path   string
		ct     string
		body   []byte
		call   func() error
		status int
		code   codes.Code
	}{
		{"detect garbage", "POST", "/v1/faces/detect", "", []byte("garbage"), func() error {
			_, err := client.Detect(ctx, &v1.DetectRequest{Image: []byte("garbage")})
			return err
		}, 415, codes.InvalidArgument},
		{"detect garbage declared as JPEG", "POST", "/v1/faces/detect", "image/jpeg", []byte("garbage"), func() error {
			_, err := client.Detect(ctx, &v1.DetectRequest{Image: []byte("garbage"), ContentType: "image/jpeg"})
			return err
		}, 400, codes.InvalidArgument},
		{"detect too many faces asked", "POST", "/v1/faces/detect?max_faces=1000", "", obama, func() error {
			_, err := client.Detect(ctx, &v1.DetectRequest{Image: obama, MaxFaces: 1000})
			return err
		}, 400, codes.InvalidArgument},
		{"verify without b", "POST", "/v1/faces/verify", ctA, onlyA, func() error {
			_, err := client.Verify(ctx, &v1.VerifyRequest{A: obama})
			return err
		}, 400, codes.InvalidArgument},
		{"verify a face with none", "POST", "/v1/faces/verify", ctBlank, withBlank, func() error {
			_, err := client.Verify(ctx, &v1.VerifyRequest{A: obama, B: blank})
			return err
		}, 422, codes.InvalidArgument},
		{"verify threshold out of range", "POST", "/v1/faces/verify?threshold=2", ctBlank, withBlank, func() error {
			_, err := client.Verify(ctx, &v1.VerifyRequest{A: obama, B: obama2, Threshold: ptr(2.0)})
			return err
		}, 400, codes.InvalidArgument},
		{"bad gallery name", "PUT", "/v1/galleries/-staff", "", nil, func() error {
			_, err := client.CreateGallery(ctx, &v1.CreateGalleryRequest{Gallery: "-staff"})
			return err
		}, 400, codes.InvalidArgument},
		{"enroll into an unknown gallery", "POST", "/v1/galleries/nope/subjects/x/faces", "", obama, func() error {
			_, err := client.Enroll(ctx, &v1.EnrollRequest{Gallery: "nope", Subject: "x", Image: obama})
			return err
		}, 404, codes.NotFound},
		{"enroll no face", "POST", "/v1/galleries/staff/subjects/nobody/faces", "", blank, func() error {
			_, err := client.Enroll(ctx, &v1.EnrollRequest{Gallery: "staff", Subject: "nobody", Image: blank})
			return err
		}, 422, codes.InvalidArgument},
		{"identify an unknown gallery", "POST", "/v1/galleries/nope/identify", "", both, func() error {
			_, err := client.Identify(ctx, &v1.IdentifyRequest{Gallery: "nope", Image: both})
			return err
		}, 404, codes.NotFound},
		{"identify garbage", "POST", "/v1/galleries/staff/identify", "image/png", []byte("garbage"), func() error {
			_, err := client.Identify(ctx, &v1.IdentifyRequest{Gallery: "staff", Image: []byte("garbage"), ContentType: "image/png"})
			return err
		}, 400, codes.InvalidArgument},
		{"unknown subject", "GET", "/v1/galleries/staff/subjects/nobody", "", nil, func() error {
			_, err := client.GetSubject(ctx, &v1.GetSubjectRequest{Gallery: "staff", Subject: "nobody"})
			return err
		}, 404, codes.NotFound},
		{"subject of an unknown gallery", "GET", "/v1/galleries/nope/subjects/x", "", nil, func() error {
			_, err := client.GetSubject(ctx, &v1.GetSubjectRequest{Gallery: "nope", Subject: "x"})
			return err
		}, 404, codes.NotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, body := httpCall(t, tc.method, srv.URL+tc.path, tc.ct, tc.body)
			st := status.Convert(tc.call())
			if code != tc.status || st.Code() != tc.code {
				t.Errorf("HTTP %d (want %d) %s; gRPC %v %q (want %v)", code, tc.status, body, st.Code(), st.Message(), tc.code)
			}
			if st.Message() == "" || strings.Contains(st.Message(), "\n") {
				t.Errorf("gRPC message %q is not one line", st.Message())
			}
		})
	}

	// Deleted over gRPC, gone over both.
	deleted, err := client.DeleteSubject(ctx, &v1.DeleteSubjectRequest{Gallery: "staff", Subject: "Barack Obama"})
	if err != nil || deleted.GetFaces() != 1 {
		t.Fatalf("DeleteSubject: %v %v", deleted, err)
	}
	if code, _, body := httpCall(t, http.MethodGet, srv.URL+subject, "", nil); code != 404 {
		t.Errorf("after DeleteSubject, HTTP %d %s", code, body)
	}
	if _, err := client.DeleteSubject(ctx, &v1.DeleteSubjectRequest{Gallery: "staff", Subject: "Barack Obama"}); status.Code(err) != codes.NotFound {
		t.Errorf("DeleteSubject again: %v", err)
	}
	if code, _, _ := httpCall(t, http.MethodDelete, srv.URL+"/v1/galleries/staff/subjects/biden", "", nil); code != 204 {
		t.Errorf("HTTP delete of the subject enrolled over HTTP: %d", code)
	}

	metrics := scrape(t, srv.URL)
	for _, want := range []string{
		`visionserve_grpc_requests_total{code="OK",method="/visionserve.v1.Faces/Detect"}`,
		`visionserve_grpc_requests_total{code="OK",method="/visionserve.v1.Faces/Identify"}`,
		`visionserve_grpc_requests_total{code="NotFound",method="/visionserve.v1.Faces/GetSubject"}`,
		`visionserve_faces_detected_total{op="enroll"} 2`, // one per transport
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// Without face recognition the Faces methods answer Unimplemented, as the
// HTTP face routes answer 501.
func TestIntegrationGRPCFacesOff(t *testing.T) {
	srv := apptest.Start(t, nil)
	client := v1.NewFacesClient(grpcConn(t, srv.GRPCAddr))
	code, _, _ := httpCall(t, http.MethodPost, srv.URL+"/v1/faces/detect", "image/png", []byte("x"))
	_, err := client.Detect(context.Background(), &v1.DetectRequest{Image: []byte("x")})
	if st := status.Convert(err); code != http.StatusNotImplemented || st.Code() != codes.Unimplemented || !strings.Contains(st.Message(), "not enabled") {
		t.Errorf("HTTP %d; gRPC %v %q", code, st.Code(), st.Message())
	}
}

func boxFrom(b *v1.Box) face.Box {
	return face.Box{X: b.GetX(), Y: b.GetY(), Width: b.GetWidth(), Height: b.GetHeight()}
}

func ptr[T any](v T) *T { return &v }

// multipartImages builds a multipart/form-data body of image fields
// (name, bytes, name, bytes, ...).
func multipartImages(t *testing.T, fields ...any) (string, []byte) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for i := 0; i+1 < len(fields); i += 2 {
		name := fields[i].(string)
		w, err := mw.CreateFormFile(name, name+".jpg")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = w.Write(fields[i+1].([]byte))
	}
	mw.Close()
	return mw.FormDataContentType(), buf.Bytes()
}

// grpcConn connects to a plain-text gRPC listener.
func grpcConn(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, _ := grpcClient(t, addr)
	return conn
}

// scrape returns the server's metrics text.
func scrape(t *testing.T, base string) string {
	t.Helper()
	code, _, body := httpCall(t, http.MethodGet, base+"/metrics", "", nil)
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	return string(body)
}
