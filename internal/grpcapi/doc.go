// Package grpcapi is the gRPC transport: it serves the Open Inference
// Protocol's inference.GRPCInferenceService (oip.Service) and visionserve's
// own visionserve.v1.OCR (ocr.Service) and visionserve.v1.Faces
// (face.Service) over the same core calls as the HTTP routes, plus the
// standard gRPC health service and server reflection on the same server.
// It holds no inference logic: a method decodes its message into the
// core's request, calls the core and encodes the answer.
//
// Every error becomes a status in one function (statusFor), from the
// classification the HTTP transport uses too (failure.Classify), so a
// failure has the same meaning and message on both. Inference calls pass
// the scheduler's admission control and get the server's request timeout,
// as HTTP inference requests do; each method's scope is the scope of its
// HTTP twin (MethodScopes). Credentials and rate limits are checked when a
// call's headers arrive (Config.Taps), before its message is read; a
// received message is held to its method's bound before it is parsed
// (boundedCodec).
package grpcapi
