package httpapi_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/visionserve/visionserve/internal/app/apptest"
)

// do sends req and reads the answer.
func do(t testing.TB, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// send makes a request with the headers given as name, value pairs.
func send(t testing.TB, method, url, contentType string, body []byte, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return do(t, req)
}

// status makes a request and returns the answer's status and body.
func status(t testing.TB, method, url, contentType string, body []byte) (int, []byte) {
	t.Helper()
	resp, data := send(t, method, url, contentType, body)
	return resp.StatusCode, data
}

// refusal is a request that must be answered 400 problem+json whose
// detail names what was wrong.
type refusal struct {
	name, method, path, ct string
	body                   []byte
	detail                 string // the detail names it
}

func expectRefusals(t *testing.T, base string, cases []refusal) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest(c.method, base+c.path, bytes.NewReader(c.body))
			if c.ct != "" {
				req.Header.Set("Content-Type", c.ct)
			}
			resp, body := do(t, req)
			var p struct{ Type, Detail string }
			_ = json.Unmarshal(body, &p)
			if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Content-Type") != "application/problem+json" ||
				!strings.HasSuffix(p.Type, "/bad-request") || !strings.Contains(p.Detail, c.detail) {
				t.Fatalf("%s %s: %d %s %s, want 400 problem+json naming %q", c.method, c.path, resp.StatusCode, resp.Header.Get("Content-Type"), body, c.detail)
			}
		})
	}
}

// Item 10 of issue 11: the face routes (and /v1/ocr) refuse a query
// parameter they do not read, and one given twice, instead of silently
// taking a default (?treshold=0.99 verified at 0.45) or one of the two
// values; the right parameters still work.
func TestIntegrationQueryParametersChecked(t *testing.T) {
	srv := apptest.Start(t, apptest.WithFace(t))
	obama := faceFile(t, "face_recognition-examples/knn_examples/train/obama/obama.jpg")
	obama2 := faceFile(t, "face_recognition-examples/knn_examples/train/obama/obama2.jpg")
	verifyCT, verifyBody := imageFields(t, "a", string(obama), "b", string(obama2))
	if code, body := status(t, "PUT", srv.URL+"/v1/galleries/staff", "", nil); code != http.StatusCreated {
		t.Fatalf("create gallery: %d %s", code, body)
	}
	subject := "/v1/galleries/staff/subjects/obama"
	expectRefusals(t, srv.URL, []refusal{
		{"misspelt threshold", "POST", "/v1/faces/verify?treshold=0.99", verifyCT, verifyBody, `"treshold"`},
		{"repeated threshold", "POST", "/v1/faces/verify?threshold=0.99&threshold=0.1", verifyCT, verifyBody, `"threshold" is given 2 times`},
		{"empty threshold", "POST", "/v1/faces/verify?threshold=", verifyCT, verifyBody, `threshold=""`},
		{"detect misspelt", "POST", "/v1/faces/detect?maxfaces=1", "image/jpeg", obama, `"maxfaces"`},
		{"detect repeated", "POST", "/v1/faces/detect?max_faces=1&max_faces=2", "image/jpeg", obama, `"max_faces"`},
		{"identify misspelt", "POST", "/v1/galleries/staff/identify?Threshold=0.9", "image/jpeg", obama, `"Threshold"`},
		{"identify repeated", "POST", "/v1/galleries/staff/identify?top_k=1&threshold=0.9&threshold=0.2", "image/jpeg", obama, `"threshold"`},
		{"identify malformed", "POST", "/v1/galleries/staff/identify?threshold=%zz", "image/jpeg", obama, "malformed query"},
		{"create with a parameter", "PUT", "/v1/galleries/other?ttl=1", "", nil, `"ttl": this route takes none`},
		{"enroll with a parameter", "POST", subject + "/faces?quality=high", "image/jpeg", obama, `"quality"`},
		{"get subject with a parameter", "GET", subject + "?faces=1", "", nil, `"faces"`},
		{"delete subject with a parameter", "DELETE", subject + "?force=1", "", nil, `"force"`},
		{"ocr misspelt", "POST", "/v1/ocr?langs=eng", "image/png", lineImage(t), `"langs"`},
		{"ocr repeated", "POST", "/v1/ocr?lang=eng&lang=deu", "image/png", lineImage(t), `"lang"`},
	})
	// Nothing was created or enrolled by a refused request.
	if code, _ := status(t, "GET", srv.URL+subject, "", nil); code != http.StatusNotFound {
		t.Errorf("a refused enroll enrolled: GET subject = %d", code)
	}
	if code, _ := status(t, "PUT", srv.URL+"/v1/galleries/other", "", nil); code != http.StatusCreated {
		t.Errorf("a refused create created the gallery: PUT again = %d", code)
	}
	// The declared parameters still work.
	resp, body := post(t, srv.URL+"/v1/faces/verify?threshold=0.99", verifyCT, verifyBody)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"threshold":0.99`) {
		t.Errorf("verify?threshold=0.99: %d %s", resp.StatusCode, body)
	}
	if resp, body := post(t, srv.URL+"/v1/ocr?lang=eng&mode=line&format=text", "image/png", lineImage(t)); resp.StatusCode != http.StatusOK {
		t.Errorf("ocr with its parameters: %d %s", resp.StatusCode, body)
	}
}

// Item 10 of issue 11: a multipart body with a second "image" part is
// refused on every route that reads one image, as verify refuses a
// second "a" or "b" (wherever in the body it comes), instead of one of
// the two images being read and the other ignored.
func TestIntegrationSecondImagePartRefused(t *testing.T) {
	srv := apptest.Start(t, apptest.WithFace(t))
	obama := faceFile(t, "face_recognition-examples/knn_examples/train/obama/obama.jpg")
	biden := faceFile(t, "face_recognition-examples/knn_examples/train/biden/biden.jpg")
	if code, body := status(t, "PUT", srv.URL+"/v1/galleries/staff", "", nil); code != http.StatusCreated {
		t.Fatalf("create gallery: %d %s", code, body)
	}
	line := lineImage(t)
	twoLines, twoLinesBody := imageFields(t, "image", string(line), "image", string(line))
	twoFaces, twoFacesBody := imageFields(t, "image", string(obama), "image", string(biden))
	aba, abaBody := imageFields(t, "a", string(obama), "b", string(biden), "a", string(biden))
	expectRefusals(t, srv.URL, []refusal{
		{"ocr", "POST", "/v1/ocr", twoLines, twoLinesBody, `"image" appears twice`},
		{"detect", "POST", "/v1/faces/detect", twoFaces, twoFacesBody, `"image" appears twice`},
		{"enroll", "POST", "/v1/galleries/staff/subjects/obama/faces", twoFaces, twoFacesBody, `"image" appears twice`},
		{"identify", "POST", "/v1/galleries/staff/identify", twoFaces, twoFacesBody, `"image" appears twice`},
		{"verify, a after b", "POST", "/v1/faces/verify", aba, abaBody, `"a" appears twice`},
	})
	if code, _ := status(t, "GET", srv.URL+"/v1/galleries/staff/subjects/obama", "", nil); code != http.StatusNotFound {
		t.Errorf("a refused enroll enrolled: GET subject = %d", code)
	}
	// One image part, among other fields, is still read.
	one, oneBody := imageFields(t, "note", "hello", "image", string(obama), "other", "x")
	if resp, body := post(t, srv.URL+"/v1/faces/detect", one, oneBody); resp.StatusCode != http.StatusOK {
		t.Errorf("one image part: %d %s", resp.StatusCode, body)
	}
}
