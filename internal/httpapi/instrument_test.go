package httpapi

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/visionserve/visionserve/internal/metrics"
)

// A client that has read a whole answer finds it counted, even when the
// answer is a body of declared length, which net/http sends as it is
// written rather than after the handler returns: here the handler has not
// returned yet.
func TestInstrumentCountsBeforeTheClientHasTheAnswer(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	s := New(Config{Metrics: m, Gatherer: reg})
	body := bytes.Repeat([]byte("x"), 1<<20) // past every buffer on the way
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.instrument("GET /big", w, r, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			w.Write(body)
			<-release // still in the handler when the client has it all
		})
	}))
	defer srv.Close()
	defer close(release) // before Close, which waits for the handler
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || len(got) != len(body) {
		t.Fatalf("read %d bytes: %v", len(got), err)
	}
	if n := testutil.ToFloat64(m.Requests.WithLabelValues("GET /big", "GET", "200")); n != 1 {
		t.Errorf("requests counted %v once the client had the answer, want 1", n)
	}
	if n := testutil.ToFloat64(m.InFlight); n != 0 {
		t.Errorf("in flight %v once the client had the answer, want 0", n)
	}
}
