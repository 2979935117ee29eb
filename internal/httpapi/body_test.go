package httpapi_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/visionserve/visionserve/internal/app/apptest"
	"github.com/visionserve/visionserve/internal/auth"
	"github.com/visionserve/visionserve/internal/config"
	"github.com/visionserve/visionserve/internal/httpapi"
	"github.com/visionserve/visionserve/internal/sched"
)

// trickle is an upload that sends the first bytes of its body, then
// nothing until it is closed.
type trickle struct {
	pw   *io.PipeWriter
	done chan *http.Response
}

func startTrickle(t *testing.T, url, key string, declared int64, first []byte) *trickle {
	t.Helper()
	pr, pw := io.Pipe()
	req, _ := http.NewRequest(http.MethodPost, url, pr)
	req.Header.Set("Content-Type", "image/png")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	req.ContentLength = declared
	u := &trickle{pw: pw, done: make(chan *http.Response, 1)}
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			resp = nil
		} else {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		u.done <- resp
	}()
	go pw.Write(first)
	t.Cleanup(func() { pw.CloseWithError(io.ErrUnexpectedEOF) })
	return u
}

// status is the answer's status once the upload was refused, or 0 while
// the server still reads it.
func (u *trickle) status() int {
	select {
	case resp := <-u.done:
		u.done <- resp
		if resp == nil {
			return -1
		}
		return resp.StatusCode
	default:
		return 0
	}
}

// Must show (issue 11, item 4): one principal's slow uploads do not make
// another principal's requests wait or fail. Bodies are read before
// admission, so uploads in progress hold no worker or queue place (with
// one worker and one queue place, two trickling uploads used to turn
// every other request away with 429 while the worker idled); and one
// principal's bodies hold at most its share of the memory for bodies, so
// its large uploads leave room for others'.
func TestIntegrationSlowUploadsDoNotBlockOthers(t *testing.T) {
	keyA, hashA, _ := auth.GenerateKey()
	keyB, hashB, _ := auth.GenerateKey()
	srv := apptest.Start(t, func(c *config.Config) {
		c.Server.Workers, c.Server.Queue = 1, 1
		c.Limits.MaxBytes = 1 << 20
		c.Server.BodyMemory = 8 << 20 // one principal: 2 MiB + 64 KiB
		c.Server.RequestTimeout = 5 * time.Minute
		c.Server.MinUploadRate = 0 // A's uploads stay until the test ends (TestIntegrationMinUploadRate)
		c.Auth.Disabled = false
		c.Auth.APIKeys = append(c.Auth.APIKeys,
			auth.APIKey{Name: "a", Hash: hashA, Scopes: []string{"infer"}},
			auth.APIKey{Name: "b", Hash: hashB, Scopes: []string{"infer"}})
	})
	good := lineImage(t)
	url := srv.URL + "/v1/ocr"
	// A: uploads that trickle, more than workers + queue: all of them
	// are being read, none holds a place...
	var small []*trickle
	for range 4 {
		small = append(small, startTrickle(t, url, keyA, int64(len(good)), good[:10]))
	}
	waitFor(t, "A's uploads to be read", func() bool {
		for i, u := range small {
			if st := u.status(); st != 0 {
				t.Fatalf("A's upload %d answered %d while its body was still arriving", i, st)
			}
		}
		return gauge(t, srv.Registry, "visionserve_body_memory_bytes") == float64(4*len(good))
	})
	// ...so B is served meanwhile.
	for i := range 3 {
		resp, body := post(t, url, "image/png", good, "Authorization", "Bearer "+keyB)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("B's request %d while A uploads slowly: %d %s", i, resp.StatusCode, body)
		}
	}
	// A's large uploads: one fits in A's share of the memory for bodies
	// beside the small ones; the other two are refused at once, and B is
	// still served.
	var large []*trickle
	for range 3 {
		large = append(large, startTrickle(t, url, keyA, 1<<20+32<<10, good[:10]))
	}
	waitFor(t, "A's uploads beyond its share to be refused", func() bool {
		refused := 0
		for _, u := range large {
			switch st := u.status(); st {
			case 0:
			case http.StatusTooManyRequests:
				refused++
			default:
				t.Fatalf("a large upload of A: status %d", st)
			}
		}
		return refused == 2
	})
	if resp, body := post(t, url, "image/png", good, "Authorization", "Bearer "+keyB); resp.StatusCode != http.StatusOK {
		t.Fatalf("B's request beside A's large uploads: %d %s", resp.StatusCode, body)
	}
	for i, u := range small {
		if st := u.status(); st != 0 {
			t.Fatalf("A's small upload %d answered %d before its body arrived", i, st)
		}
	}
	if n := counter(t, srv.Registry, "visionserve_rejected_requests_total", map[string]string{"reason": sched.ReasonBodyShare}); n != 2 {
		t.Errorf("refusals for a full share counted: %v, want 2", n)
	}
}

// A body that stops arriving is refused with 408 once it falls behind
// server.min_upload_rate (after read_header_timeout), long before the
// request's deadline.
func TestIntegrationMinUploadRate(t *testing.T) {
	srv := apptest.Start(t, func(c *config.Config) {
		c.Server.RequestTimeout = 10 * time.Minute
		c.Server.ReadHeaderTimeout = time.Second
		c.Server.MinUploadRate = 8 << 10
	})
	good := lineImage(t)
	u := startTrickle(t, srv.URL+"/v1/ocr", "", int64(len(good)), good[:10])
	resp := <-u.done
	u.done <- resp
	if resp == nil || resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("a stalled upload: %v, want 408", resp)
	}
	// The server still serves.
	if resp, body := post(t, srv.URL+"/v1/ocr", "image/png", good); resp.StatusCode != http.StatusOK {
		t.Fatalf("after the stalled upload: %d %s", resp.StatusCode, body)
	}
}

// A compressed body is refused with 415 and Accept-Encoding: identity
// (RFC 9110, 15.5.16) on every route that takes a body; it used to be
// read as the raw bytes of an image, tensors or a document.
func TestContentEncodingRefused(t *testing.T) {
	s := httpapi.New(httpapi.Config{Scheduler: sched.New(1, 1, nil), Gatherer: prometheus.NewRegistry()})
	srv := httptest.NewServer(s)
	defer srv.Close()
	for _, rt := range s.Routes() {
		if rt.Method != http.MethodPost && rt.Method != http.MethodPut || rt.Scope == auth.ScopeModelsAdmin {
			continue
		}
		for _, coding := range []string{"gzip", "br", "identity, gzip", "x-gzip"} {
			req, _ := http.NewRequest(rt.Method, srv.URL+pathOf(rt), bytes.NewReader([]byte("\x1f\x8b\x08\x00compressed")))
			req.Header.Set("Content-Type", "application/octet-stream")
			req.Header.Set("Content-Encoding", coding)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var p httpapi.Problem
			json.NewDecoder(resp.Body).Decode(&p)
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnsupportedMediaType || resp.Header.Get("Accept-Encoding") != "identity" ||
				!strings.HasSuffix(p.Type, "/unsupported-content-encoding") {
				t.Errorf("%s with Content-Encoding %s: %d, Accept-Encoding %q, type %q; want 415, identity",
					rt.Pattern(), coding, resp.StatusCode, resp.Header.Get("Accept-Encoding"), p.Type)
			}
		}
	}
	// identity is no coding at all: the request reaches its handler
	// (jobs are off here: 501).
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/jobs", strings.NewReader("x"))
	req.Header.Set("Content-Encoding", "identity")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotImplemented {
		t.Errorf("Content-Encoding: identity: %d, want the handler's 501", resp.StatusCode)
	}
}

// A request refused before its body is read (no credential, a compressed
// body) is answered at once and its connection closed, however slowly
// the body arrives: net/http used to read up to 256 KiB of the body
// first, so a trickling client held the answer, and the connection, for
// as long as it liked.
func TestRefusalsDoNotWaitForTheBody(t *testing.T) {
	c := newCredentials(t)
	srv := httptest.NewServer(httpapi.New(httpapi.Config{Auth: c.a, Scheduler: sched.New(1, 1, nil), Gatherer: prometheus.NewRegistry()}))
	defer srv.Close()
	for _, tc := range []struct {
		name, key string
		want      int
	}{
		{"no credential", "", http.StatusUnauthorized},
		{"a bad credential", "vsk_not_a_key", http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := startTrickle(t, srv.URL+"/v1/ocr", tc.key, 1000, []byte("0123456789"))
			select {
			case resp := <-u.done:
				if resp == nil || resp.StatusCode != tc.want || !resp.Close {
					t.Fatalf("%v; want %d and the connection closed", resp, tc.want)
				}
			case <-time.After(30 * time.Second): // bounds a broken test only
				t.Fatal("the refusal waited for the rest of the body")
			}
		})
	}
}
