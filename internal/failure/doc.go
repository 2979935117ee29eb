// Package failure classifies the errors of the core packages (image
// decoding, OCR, the inference protocol, faces and galleries, the model
// repository, the scheduler and engines) into the kinds of failure the
// transports report: one table gives each kind its HTTP status, its gRPC
// code, a detail safe to show to a client and retry advice. httpapi turns
// a Class into a problem document, grpcapi into a status, so the two
// transports cannot disagree about what went wrong.
//
// It never writes responses, and it knows nothing of the transports' own
// errors (credentials, rate limits, malformed HTTP bodies), which each
// transport classifies before asking here.
package failure
