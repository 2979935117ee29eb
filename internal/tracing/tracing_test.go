package tracing_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"regexp"
	"testing"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/visionserve/visionserve/internal/tracing"
)

var traceID = regexp.MustCompile(`^[0-9a-f]{32}$`)

func TestHTTPSpanAndHeader(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	p, err := tracing.New(context.Background(), tracing.Config{SampleRatio: 1}, tracing.Options{Exporter: exp})
	if err != nil {
		t.Fatal(err)
	}
	// A client's traceparent is continued.
	r := httptest.NewRequest("POST", "/v1/ocr", nil)
	r.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	w := httptest.NewRecorder()
	_, span := p.StartHTTP(w, r, "POST /v1/ocr")
	tracing.EndHTTP(span, 503)
	if got := w.Header().Get(tracing.HeaderTraceID); got != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Fatalf("X-Trace-Id %q", got)
	}
	if err := p.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans := exp.GetSpans()
	if len(spans) != 1 || spans[0].Name != "POST /v1/ocr" || spans[0].Parent.SpanID().String() != "00f067aa0ba902b7" || spans[0].Status.Code.String() != "Error" {
		t.Fatalf("spans %+v", spans)
	}
}

// Off (no endpoint): nothing is exported, but requests still get a trace
// id in the header and in the logs.
func TestOffStillHasTraceIDs(t *testing.T) {
	p, err := tracing.New(context.Background(), tracing.Config{}, tracing.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown(context.Background())
	var buf bytes.Buffer
	log := slog.New(tracing.LogHandler(slog.NewJSONHandler(&buf, nil))).With("component", "test")
	w := httptest.NewRecorder()
	ctx, span := p.StartHTTP(w, httptest.NewRequest("GET", "/healthz", nil), "GET /healthz")
	if span.IsRecording() {
		t.Error("span recorded with tracing off")
	}
	id := w.Header().Get(tracing.HeaderTraceID)
	if !traceID.MatchString(id) {
		t.Fatalf("X-Trace-Id %q", id)
	}
	log.InfoContext(ctx, "hello")
	log.Info("no context")
	lines := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
	var first, second map[string]any
	json.Unmarshal(lines[0], &first)
	json.Unmarshal(lines[1], &second)
	if first["trace_id"] != id || first["component"] != "test" || first["span_id"] == nil {
		t.Fatalf("log line %s", lines[0])
	}
	if _, ok := second["trace_id"]; ok {
		t.Fatalf("trace_id without a span: %s", lines[1])
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []tracing.Config{
		{Endpoint: "collector:4318"},
		{Endpoint: "ftp://x"},
		{Protocol: "thrift"},
		{SampleRatio: 2},
	} {
		if c.Validate() == nil {
			t.Errorf("%+v accepted", c)
		}
	}
	if err := (tracing.Config{Endpoint: "https://otel.example:4318", Protocol: "grpc", SampleRatio: 0.1}).Validate(); err != nil {
		t.Error(err)
	}
}
