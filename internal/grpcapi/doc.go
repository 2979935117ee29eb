// Package grpcapi is the gRPC transport: it serves the Open Inference
// Protocol's inference.GRPCInferenceService over the same core calls as the
// REST routes (oip.Service), plus the standard gRPC health service and
// server reflection on the same server. Every error becomes a status code
// in one function (statusFor). It holds no inference logic.
//
// Inference calls pass the scheduler's admission control and get the
// server's request timeout, as HTTP inference requests do; messages are
// bounded by the configured request size.
package grpcapi
