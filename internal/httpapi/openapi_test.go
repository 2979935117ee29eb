package httpapi_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/visionserve/visionserve/internal/app/apptest"
	"github.com/visionserve/visionserve/internal/auth"
	"github.com/visionserve/visionserve/internal/httpapi"
	"github.com/visionserve/visionserve/internal/imageio/imagetest"
	"github.com/visionserve/visionserve/internal/ocr/dewarp/dewarptest"
)

func loadSpec(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(httpapi.OpenAPI())
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.json is not valid OpenAPI 3: %v", err)
	}
	return doc
}

// The document lists exactly the routes the server serves.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	doc := loadSpec(t)
	var documented, served []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented = append(documented, method+" "+path)
		}
	}
	for _, rt := range httpapi.New(httpapi.Config{}).Routes() {
		served = append(served, rt.Pattern())
	}
	sort.Strings(documented)
	sort.Strings(served)
	if strings.Join(documented, "\n") != strings.Join(served, "\n") {
		t.Fatalf("openapi.json documents\n  %s\nbut the server serves\n  %s", strings.Join(documented, "\n  "), strings.Join(served, "\n  "))
	}
}

// Real responses, good and bad, validate against the document.
func TestIntegrationResponsesMatchOpenAPI(t *testing.T) {
	doc := loadSpec(t)
	doc.Servers = nil // match paths regardless of host
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	srv := apptest.Start(t, nil)
	good := lineImage(t)
	oipOCR := []byte(`{"id":"1","inputs":[{"name":"image","shape":[1],"datatype":"BYTES","parameters":{"content_type":"base64"},"data":["` +
		base64.StdEncoding.EncodeToString(good) + `"]}],"outputs":[{"name":"text"}]}`)
	for _, tc := range []struct {
		method, path, ct string
		body             []byte
		want             int
	}{
		{"POST", "/v1/ocr", "image/png", good, 200},
		{"POST", "/v1/ocr?format=text", "image/png", good, 200},
		{"POST", "/v1/ocr?mode=page&rotate=off", "image/png", good, 200},
		{"POST", "/v1/ocr?dewarp=auto", "image/png", dewarptest.PNG(t, dewarptest.Photo(9)), 200}, // a page.dewarp object
		{"POST", "/v1/ocr?dewarp=off", "image/png", good, 200},
		{"POST", "/v1/ocr", "image/png", []byte("garbage"), 400},
		{"POST", "/v1/ocr", "image/png", imagetest.PNGHeader(30000, 30000), 413},
		{"POST", "/v1/ocr?model=nope", "image/png", good, 404},
		{"POST", "/v1/faces/detect", "image/png", good, 501},
		{"GET", "/healthz", "", nil, 200},
		{"GET", "/readyz", "", nil, 200},
		{"GET", "/metrics", "", nil, 200},
		{"GET", "/openapi.json", "", nil, 200},
		{"GET", "/v2", "", nil, 200},
		{"GET", "/v2/health/live", "", nil, 200},
		{"GET", "/v2/health/ready", "", nil, 200},
		{"GET", "/v2/models/ocr-eng", "", nil, 200},
		{"GET", "/v2/models/ocr-eng/versions/1", "", nil, 200},
		{"GET", "/v2/models/nope", "", nil, 404},
		{"GET", "/v2/models/ocr-eng/ready", "", nil, 200},
		{"GET", "/v2/models/ocr-eng/versions/1/ready", "", nil, 200},
		{"POST", "/v2/models/ocr-eng/infer", "application/json", oipOCR, 200},
		{"POST", "/v2/models/ocr-eng/versions/1/infer", "application/json", oipOCR, 200},
		{"POST", "/v2/models/ocr-eng/infer", "application/json", []byte(`{"inputs":[{"name":"image","shape":[2],"datatype":"BYTES","data":["x"]}]}`), 400},
		{"POST", "/v2/models/ocr-eng/versions/9/infer", "application/json", oipOCR, 404},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, srv.URL+tc.path, bytes.NewReader(tc.body))
			if tc.ct != "" {
				req.Header.Set("Content-Type", tc.ct)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.want, body)
			}
			route, params, err := router.FindRoute(req)
			if err != nil {
				t.Fatalf("route not in the document: %v", err)
			}
			in := &openapi3filter.RequestValidationInput{Request: withoutBody(req), PathParams: params, Route: route,
				Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, ExcludeRequestBody: true}}
			if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
				t.Errorf("request does not match the document: %v", err)
			}
			out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
				Options: &openapi3filter.Options{IncludeResponseStatus: true}}
			out.SetBodyBytes(body)
			if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
				t.Errorf("response does not match the document: %v", err)
			}
		})
	}
}

// The document is JSON that strict parsers accept: no object repeats a
// key (encoding/json keeps the last one silently; others refuse).
func TestOpenAPIHasNoDuplicateKeys(t *testing.T) {
	dec := json.NewDecoder(bytes.NewReader(httpapi.OpenAPI()))
	var walk func(path string) error
	walk = func(path string) error {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('{'):
			seen := map[string]bool{}
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return err
				}
				key := k.(string)
				if seen[key] {
					return fmt.Errorf("%s/%s appears twice", path, key)
				}
				seen[key] = true
				if err := walk(path + "/" + key); err != nil {
					return err
				}
			}
			_, err = dec.Token()
			return err
		case json.Delim('['):
			for i := 0; dec.More(); i++ {
				if err := walk(fmt.Sprintf("%s/%d", path, i)); err != nil {
					return err
				}
			}
			_, err = dec.Token()
			return err
		}
		return nil
	}
	if err := walk("#"); err != nil {
		t.Fatal(err)
	}
}

// Each operation declares the security its route's scope needs, so that
// generated clients send a credential exactly where one is needed: none
// (`security: []`) on public routes, a bearer token or an API key on the
// others.
func TestOpenAPISecurityMatchesScopes(t *testing.T) {
	doc := loadSpec(t)
	for _, rt := range httpapi.New(httpapi.Config{}).Routes() {
		item := doc.Paths.Find(rt.Path)
		if item == nil || item.GetOperation(rt.Method) == nil {
			t.Errorf("%s: not documented", rt.Pattern())
			continue
		}
		op := item.GetOperation(rt.Method)
		sec := op.Security
		if sec == nil {
			sec = &doc.Security
		}
		var schemes []string
		for _, req := range *sec {
			for name := range req {
				schemes = append(schemes, name)
			}
		}
		sort.Strings(schemes)
		got := strings.Join(schemes, ",")
		switch {
		case rt.Scope == auth.Public && (op.Security == nil || got != ""):
			t.Errorf("%s is public: want \"security\": [] on the operation, have %q", rt.Pattern(), got)
		case rt.Scope != auth.Public && got != "apiKey,bearer":
			t.Errorf("%s needs %s: want security bearer or apiKey, have %q", rt.Pattern(), rt.Scope, got)
		}
	}
}
