package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/png"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/visionserve/visionserve/internal/app/apptest"
	"github.com/visionserve/visionserve/internal/testenv"
)

// faceFile reads an image of shared/data/face.
func faceFile(t testing.TB, rel string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testenv.Shared(t, "data/face"), rel))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// imageFields builds a multipart/form-data body of image fields.
func imageFields(t testing.TB, fields ...string) (string, []byte) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for i := 0; i+1 < len(fields); i += 2 {
		w, err := mw.CreateFormFile(fields[i], fields[i]+".jpg")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = w.Write([]byte(fields[i+1]))
	}
	mw.Close()
	return mw.FormDataContentType(), buf.Bytes()
}

// apiCall is one request of a scripted API session.
type apiCall struct {
	name, method, path, ct string
	body                   []byte
	want                   int
	check                  func(t *testing.T, body []byte)
}

// runCalls sends each call in order, checks its status, and validates the
// request and response against openapi.json.
func runCalls(t *testing.T, base string, calls []apiCall) {
	t.Helper()
	doc := loadSpec(t)
	doc.Servers = nil
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest(c.method, base+c.path, bytes.NewReader(c.body))
			if c.ct != "" {
				req.Header.Set("Content-Type", c.ct)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != c.want {
				t.Fatalf("%s %s: status %d, want %d: %s", c.method, c.path, resp.StatusCode, c.want, body)
			}
			validate(t, router, req, resp, body)
			if c.check != nil {
				c.check(t, body)
			}
		})
	}
}

func validate(t *testing.T, router routers.Router, req *http.Request, resp *http.Response, body []byte) {
	t.Helper()
	req = withoutBody(req)
	route, params, err := router.FindRoute(req)
	if err != nil {
		if resp.StatusCode == http.StatusMethodNotAllowed || resp.StatusCode == http.StatusNotFound {
			return // not a documented operation, by design
		}
		t.Fatalf("route not in the document: %v", err)
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, ExcludeRequestBody: true}}
	if resp.StatusCode != http.StatusBadRequest {
		if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
			t.Errorf("request does not match the document: %v", err)
		}
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true}}
	out.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		t.Errorf("response does not match the document: %v", err)
	}
}

func decodeJSON(t *testing.T, body []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
}

// mobileFaceNetSHA256 is the digest of shared/models/face/MobileFaceNet.onnx
// (its SOURCES.md).
const mobileFaceNetSHA256 = "b7120c095d60094f28a4a54ba6a8bf51b297a6273fb40ef6350dfec1f63d9507"

// TestIntegrationFaceAPI drives every face and gallery endpoint of a real
// server with the real models: good requests and each kind of error, every
// response checked against openapi.json, then the metrics.
func TestIntegrationFaceAPI(t *testing.T) {
	srv := apptest.Start(t, apptest.WithFace(t))
	obama := faceFile(t, "face_recognition-examples/knn_examples/train/obama/obama.jpg")
	obama2 := faceFile(t, "face_recognition-examples/knn_examples/train/obama/obama2.jpg")
	biden := faceFile(t, "face_recognition-examples/knn_examples/train/biden/biden.jpg")
	both := faceFile(t, "face_recognition-examples/knn_examples/test/obama_and_biden.jpg")
	var blank bytes.Buffer
	_ = png.Encode(&blank, image.NewGray(image.Rect(0, 0, 100, 100)))
	verifyCT, verifyBody := imageFields(t, "a", string(obama), "b", string(obama2))
	mismatchCT, mismatchBody := imageFields(t, "a", string(obama), "b", string(biden))
	halfCT, halfBody := imageFields(t, "a", string(obama))
	imageCT, imageBody := imageFields(t, "image", string(biden))
	var faceID string
	subject := "/v1/galleries/staff/subjects/" + url.PathEscape("Barack Obama")

	runCalls(t, srv.URL, []apiCall{
		{name: "detect", method: "POST", path: "/v1/faces/detect?max_faces=2", ct: "image/jpeg", body: both, want: 200, check: func(t *testing.T, b []byte) {
			var r struct {
				Models struct {
					Detector struct{ Name, Version string }
					Embedder *struct{}
				}
				Faces []struct {
					Box       struct{ X, Y, Width, Height float64 }
					Landmarks [][2]float64
					Score     float64
				}
				Width int
			}
			decodeJSON(t, b, &r)
			if len(r.Faces) != 2 || r.Width != 2000 || r.Faces[0].Score < r.Faces[1].Score || len(r.Faces[0].Landmarks) != 5 {
				t.Errorf("detect: %s", b)
			}
			// Model files are named by file name and digest.
			if m := r.Models; m.Detector.Name != "yunet_s_dynamic.onnx" || m.Detector.Version != "sha256:daede24002cc" || m.Embedder != nil {
				t.Errorf("detect models: %s", b)
			}
		}},
		{name: "detect no face", method: "POST", path: "/v1/faces/detect", ct: "image/png", body: blank.Bytes(), want: 200, check: func(t *testing.T, b []byte) {
			if !strings.Contains(string(b), `"faces":[]`) {
				t.Errorf("detect blank: %s", b)
			}
		}},
		{name: "detect bad max_faces", method: "POST", path: "/v1/faces/detect?max_faces=1000", ct: "image/jpeg", body: both, want: 400},
		{name: "detect garbage", method: "POST", path: "/v1/faces/detect", ct: "image/png", body: []byte("garbage"), want: 400},
		{name: "verify same", method: "POST", path: "/v1/faces/verify", ct: verifyCT, body: verifyBody, want: 200, check: func(t *testing.T, b []byte) {
			var r struct {
				Similarity, Threshold float64
				Match                 bool
			}
			decodeJSON(t, b, &r)
			if !r.Match || r.Threshold != 0.45 || r.Similarity < 0.45 {
				t.Errorf("verify: %s", b)
			}
			if !strings.Contains(string(b), `"embedder":{"name":"MobileFaceNet.onnx","version":"sha256:b7120c095d60","id":"sha256:`+mobileFaceNetSHA256+`"}`) {
				t.Errorf("verify models: %s", b)
			}
		}},
		{name: "verify different", method: "POST", path: "/v1/faces/verify?threshold=0.3", ct: mismatchCT, body: mismatchBody, want: 200, check: func(t *testing.T, b []byte) {
			if !strings.Contains(string(b), `"match":false`) || !strings.Contains(string(b), `"threshold":0.3`) {
				t.Errorf("verify: %s", b)
			}
		}},
		{name: "verify missing b", method: "POST", path: "/v1/faces/verify", ct: halfCT, body: halfBody, want: 400},
		{name: "verify raw body", method: "POST", path: "/v1/faces/verify", ct: "image/jpeg", body: obama, want: 400},
		{name: "verify bad threshold", method: "POST", path: "/v1/faces/verify?threshold=2", ct: verifyCT, body: verifyBody, want: 400},
		{name: "enroll before the gallery", method: "POST", path: subject + "/faces", ct: "image/jpeg", body: obama, want: 404},
		{name: "create gallery", method: "PUT", path: "/v1/galleries/staff", want: 201},
		{name: "create gallery again", method: "PUT", path: "/v1/galleries/staff", want: 200},
		{name: "bad gallery name", method: "PUT", path: "/v1/galleries/-staff", want: 400},
		{name: "enroll", method: "POST", path: subject + "/faces", ct: "image/jpeg", body: obama, want: 201, check: func(t *testing.T, b []byte) {
			var r struct {
				FaceID string `json:"face_id"`
			}
			decodeJSON(t, b, &r)
			if faceID = r.FaceID; len(faceID) != 32 {
				t.Errorf("enroll: %s", b)
			}
		}},
		{name: "enroll multipart", method: "POST", path: "/v1/galleries/staff/subjects/biden/faces", ct: imageCT, body: imageBody, want: 201},
		{name: "enroll no face", method: "POST", path: "/v1/galleries/staff/subjects/nobody/faces", ct: "image/png", body: blank.Bytes(), want: 422},
		{name: "get subject", method: "GET", path: subject, want: 200, check: func(t *testing.T, b []byte) {
			if !strings.Contains(string(b), faceID) || !strings.Contains(string(b), `"subject":"Barack Obama"`) {
				t.Errorf("subject: %s (face %s)", b, faceID)
			}
		}},
		{name: "identify", method: "POST", path: "/v1/galleries/staff/identify?top_k=2", ct: "image/jpeg", body: both, want: 200, check: func(t *testing.T, b []byte) {
			var r struct {
				Faces []struct {
					Matches []struct {
						Subject    string
						Similarity float64
					}
				}
			}
			decodeJSON(t, b, &r)
			var best []string
			for _, f := range r.Faces {
				if len(f.Matches) > 0 {
					best = append(best, f.Matches[0].Subject)
				}
			}
			if len(r.Faces) != 3 || strings.Join(best, ",") != "Barack Obama,biden" && strings.Join(best, ",") != "biden,Barack Obama" {
				t.Errorf("identify: %s", b)
			}
		}},
		{name: "identify threshold 1", method: "POST", path: "/v1/galleries/staff/identify?threshold=1&max_faces=1", ct: "image/jpeg", body: both, want: 200, check: func(t *testing.T, b []byte) {
			if !strings.Contains(string(b), `"matches":[]`) {
				t.Errorf("identify at threshold 1: %s", b)
			}
		}},
		{name: "identify bad top_k", method: "POST", path: "/v1/galleries/staff/identify?top_k=abc", ct: "image/jpeg", body: both, want: 400},
		{name: "identify missing gallery", method: "POST", path: "/v1/galleries/nope/identify", ct: "image/jpeg", body: both, want: 404},
		{name: "identify wrong method", method: "GET", path: "/v1/galleries/staff/identify", want: 405},
		{name: "list galleries", method: "GET", path: "/v1/galleries", want: 200, check: func(t *testing.T, b []byte) {
			if !strings.Contains(string(b), `"name":"staff"`) || !strings.Contains(string(b), `"faces":2`) || strings.Contains(string(b), "next_page_token") {
				t.Errorf("galleries: %s", b)
			}
		}},
		{name: "list subjects", method: "GET", path: "/v1/galleries/staff/subjects?page_size=1", want: 200, check: func(t *testing.T, b []byte) {
			var p struct {
				Subjects []struct {
					Subject string
					Faces   int
				}
				Next string `json:"next_page_token"`
			}
			decodeJSON(t, b, &p)
			if len(p.Subjects) != 1 || p.Subjects[0].Subject != "Barack Obama" || p.Subjects[0].Faces != 1 || p.Next == "" {
				t.Errorf("subjects: %s", b)
			}
		}},
		{name: "list subjects bad token", method: "GET", path: "/v1/galleries/staff/subjects?page_token=nope!", want: 400},
		{name: "list subjects missing gallery", method: "GET", path: "/v1/galleries/nope/subjects", want: 404},
		{name: "create a gallery to delete", method: "PUT", path: "/v1/galleries/temp", want: 201},
		{name: "delete gallery", method: "DELETE", path: "/v1/galleries/temp", want: 204},
		{name: "delete gallery again", method: "DELETE", path: "/v1/galleries/temp", want: 404},
		{name: "delete subject", method: "DELETE", path: subject, want: 204},
		{name: "delete subject again", method: "DELETE", path: subject, want: 404},
		{name: "get deleted subject", method: "GET", path: subject, want: 404},
	})

	// Metrics: the operations were counted, and no gallery or subject
	// name became a label value.
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	m, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		`visionserve_faces_detected_total{op="enroll"} 2`, `visionserve_face_similarity_count{op="verify"} 2`,
		`visionserve_gallery_search_seconds_count{kind="exact"}`, `visionserve_galleries 1`, `visionserve_gallery_faces 1`,
		`visionserve_face_cache_lookups_total{result="hit"}`,
	} {
		if !strings.Contains(string(m), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	for _, leak := range []string{"staff", "Obama", "biden"} {
		if strings.Contains(string(m), leak) {
			t.Errorf("metrics mention %q", leak)
		}
	}
}

// withoutBody copies a request that was sent, for checking it against the
// document: its body may still be in the transport's hands (a server that
// answers before reading all of it), and the check reads the request but
// never needs its body (ExcludeRequestBody), so the copy has none.
func withoutBody(req *http.Request) *http.Request {
	req = req.Clone(context.Background())
	req.Body, req.GetBody = http.NoBody, nil
	return req
}
