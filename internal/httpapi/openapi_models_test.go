package httpapi_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/visionserve/visionserve/internal/app/apptest"
	"github.com/visionserve/visionserve/internal/config"
	"github.com/visionserve/visionserve/internal/modelrepo"
	"github.com/visionserve/visionserve/internal/modelrepo/manifest"
	"github.com/visionserve/visionserve/internal/modelrepo/repotest"
)

// The model routes' real responses, good and bad, with and without a
// repository, validate against the document.
func TestIntegrationModelResponsesMatchOpenAPI(t *testing.T) {
	doc := loadSpec(t)
	doc.Servers = nil
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	root, key := t.TempDir(), repotest.NewKey(t)
	spec := func(v int) repotest.Spec {
		return repotest.Spec{Name: "ocr-eng", Version: v, Kind: manifest.KindOCRTesseract, Files: repotest.Tessdata(t), Signer: key.Signer}
	}
	repotest.Publish(t, root, spec(1))
	broken := spec(2)
	broken.Tamper = func(t testing.TB, dir string) { repotest.FlipByte(t, dir, "eng.traineddata", 3) }
	repotest.Publish(t, root, broken)
	repo := apptest.Start(t, func(c *config.Config) {
		c.Repository.Dir = root
		c.Repository.Trust.Keys = []string{key.PublicPath}
		c.Repository.Policy = modelrepo.Policy{Latest: 2}
	})
	static := apptest.Start(t, nil)

	for _, tc := range []struct {
		srv                *apptest.Server
		method, path, body string
		header             map[string]string
		want               int
	}{
		{repo, "GET", "/v1/models", "", nil, 200},
		{repo, "GET", "/v1/models/ocr-eng", "", nil, 200},
		{repo, "GET", "/v1/models/nope", "", nil, 404},
		{repo, "POST", "/v1/models/ocr-eng/versions/1/load", "", nil, 200},
		{repo, "POST", "/v1/models/ocr-eng/versions/2/load", "", nil, 422},
		{repo, "POST", "/v1/models/ocr-eng/versions/9/load", "", nil, 404},
		{repo, "POST", "/v1/models/ocr-eng/versions/x/unload", "", nil, 400},
		{repo, "PUT", "/v1/models/ocr-eng/traffic", `{"weights": {"1": 90, "2": 10}}`, nil, 200},
		{repo, "PUT", "/v1/models/ocr-eng/traffic", `{"weights": {"1": -5}}`, nil, 400},
		{repo, "PUT", "/v1/models/nope/traffic", `{"weights": {}}`, nil, 404},
		{repo, "POST", "/v1/models/ocr-eng/versions/1/unload", "", nil, 200},
		{repo, "GET", "/v1/models/events?since=1", "", nil, 200},
		{repo, "GET", "/v1/models/events?since=x", "", nil, 400},
		{repo, "POST", "/v1/ocr", "", map[string]string{"X-Routing-Key": "alice", "X-Model-Version": "7"}, 404},
		{static, "GET", "/v1/models", "", nil, 200},
		{static, "GET", "/v1/models/ocr-eng", "", nil, 200},
		{static, "POST", "/v1/models/ocr-eng/versions/1/load", "", nil, 409},
		{static, "PUT", "/v1/models/ocr-eng/traffic", `{"weights": {"1": 1}}`, nil, 409},
		{static, "GET", "/v1/models/events", "", nil, 409},
	} {
		name := tc.method + " " + tc.path
		if tc.srv == static {
			name = "static " + name
		}
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			var body []byte
			if tc.path == "/v1/ocr" {
				body = lineImage(t)
			} else {
				body = []byte(tc.body)
			}
			// The model routes live on the admin listener and need its key.
			base, admin := tc.srv.URL, strings.HasPrefix(tc.path, "/v1/models")
			if admin {
				base = tc.srv.AdminURL
			}
			req, _ := http.NewRequestWithContext(ctx, tc.method, base+tc.path, bytes.NewReader(body))
			if admin {
				req.Header.Set("Authorization", "Bearer "+tc.srv.AdminKey)
			}
			if tc.body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			if tc.path == "/v1/ocr" {
				req.Header.Set("Content-Type", "image/png")
			}
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			stream := resp.Header.Get("Content-Type") == "text/event-stream"
			var respBody []byte
			if stream {
				// An endless stream: read its opening, then hang up.
				buf := make([]byte, 64)
				n, _ := io.ReadAtLeast(resp.Body, buf, 1)
				respBody = buf[:n]
				cancel()
			} else {
				respBody, _ = io.ReadAll(resp.Body)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.want, respBody)
			}
			route, params, err := router.FindRoute(req)
			if err != nil {
				t.Fatalf("route not in the document: %v", err)
			}
			if route.Path != pathPattern(tc.path) {
				t.Fatalf("%s matched the document's %s", tc.path, route.Path)
			}
			in := &openapi3filter.RequestValidationInput{Request: withoutBody(req), PathParams: params, Route: route,
				Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, ExcludeRequestBody: true}}
			if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil && resp.StatusCode < 400 {
				t.Errorf("request does not match the document: %v", err)
			}
			out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
				Options: &openapi3filter.Options{IncludeResponseStatus: true, ExcludeResponseBody: stream}}
			out.SetBodyBytes(respBody)
			if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
				t.Errorf("response does not match the document: %v\n%s", err, respBody)
			}
		})
	}
}

// pathPattern maps a request path to the document's path template.
func pathPattern(p string) string {
	for prefix, pattern := range map[string]string{
		"/v1/models/events":                    "/v1/models/events",
		"/v1/models/ocr-eng/versions/1/load":   "/v1/models/{model}/versions/{version}/load",
		"/v1/models/ocr-eng/versions/2/load":   "/v1/models/{model}/versions/{version}/load",
		"/v1/models/ocr-eng/versions/9/load":   "/v1/models/{model}/versions/{version}/load",
		"/v1/models/ocr-eng/versions/x/unload": "/v1/models/{model}/versions/{version}/unload",
		"/v1/models/ocr-eng/versions/1/unload": "/v1/models/{model}/versions/{version}/unload",
		"/v1/models/ocr-eng/traffic":           "/v1/models/{model}/traffic",
		"/v1/models/nope/traffic":              "/v1/models/{model}/traffic",
		"/v1/models/ocr-eng":                   "/v1/models/{model}",
		"/v1/models/nope":                      "/v1/models/{model}",
	} {
		if len(p) >= len(prefix) && p[:len(prefix)] == prefix && (len(p) == len(prefix) || p[len(prefix)] == '?') {
			return pattern
		}
	}
	if i := bytes.IndexByte([]byte(p), '?'); i >= 0 {
		return p[:i]
	}
	return p
}
