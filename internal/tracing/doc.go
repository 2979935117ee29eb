// Package tracing sets up OpenTelemetry for visionserve: an OTLP exporter
// (HTTP or gRPC) when an endpoint is configured, nothing exported
// otherwise. Trace and span IDs are generated either way, so every request
// has a trace id for its logs and its X-Trace-Id response header even when
// no collector is listening; without an endpoint nothing is sampled, so the
// cost is one ID per request.
//
// tracing owns no global state: the provider, tracer and propagator are
// passed to whoever needs them, never installed with otel.SetTracerProvider.
package tracing
