package ocr

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/visionserve/visionserve/internal/imageio"
	"github.com/visionserve/visionserve/internal/tracing"
)

// A span per request and per stage, each naming the model version; a
// failure carries a bounded reason.
func TestSpans(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	models, _ := NewStaticModels(&Model{Ref: ModelRef{Name: "m", Version: "7"}, Languages: "eng", Engines: onePool{&fakeEngine{}}})
	cfg := DefaultConfig()
	cfg.Tracer = tp.Tracer("test")
	svc := NewService(cfg, models, direct{}, nil, nil)
	if _, err := svc.Recognize(context.Background(), Input{Data: pngOf(t, page(60, [2]int{5, 10}))}, Options{Mode: ModeLine}); err != nil {
		t.Fatal(err)
	}
	attrs := func(s tracetest.SpanStub) map[string]string {
		m := map[string]string{}
		for _, kv := range s.Attributes {
			m[string(kv.Key)] = kv.Value.String()
		}
		return m
	}
	names := map[string]tracetest.SpanStub{}
	for _, s := range exp.GetSpans() {
		names[s.Name] = s
	}
	for _, n := range []string{"ocr.recognize", "ocr.decode", "ocr.preprocess", "ocr.recognize_text"} {
		s, ok := names[n]
		if !ok {
			t.Fatalf("no %s span among %v", n, exp.GetSpans())
		}
		a := attrs(s)
		if a[string(tracing.AttrModelName)] != "m" || a[string(tracing.AttrModelVersion)] != "7" {
			t.Errorf("%s attributes %v", n, a)
		}
		if n != "ocr.recognize" && s.Parent.SpanID() != names["ocr.recognize"].SpanContext.SpanID() {
			t.Errorf("%s is not a child of ocr.recognize", n)
		}
	}
	exp.Reset()
	_, err := svc.Recognize(context.Background(), Input{Data: pngOf(t, page(60, [2]int{5, 10}))[:60], Declared: imageio.PNG}, Options{})
	if err == nil {
		t.Fatal("garbage recognised")
	}
	for _, s := range exp.GetSpans() {
		if s.Name == "ocr.recognize" {
			if got := attrs(s)[string(tracing.AttrFailureReason)]; got != ReasonUndecodable {
				t.Fatalf("failure reason %q", got)
			}
			return
		}
	}
	t.Fatal("no ocr.recognize span for the failure")
}

func TestFailureReasonIsBounded(t *testing.T) {
	if got := FailureReason(context.Canceled); got != ReasonCanceled {
		t.Errorf("canceled: %s", got)
	}
	if got := FailureReason(errString("cuda exploded: 0x7fff")); got != ReasonEngine {
		t.Errorf("unknown errors must map to %s, got %s", ReasonEngine, got)
	}
}

type errString string

func (e errString) Error() string { return string(e) }
