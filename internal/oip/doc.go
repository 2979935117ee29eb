// Package oip is the core of the Open Inference Protocol (KServe V2, also
// spoken by Triton): server and model metadata, readiness, and inference on
// typed tensors. The REST transport (httpapi) and the gRPC transport
// (grpcapi) decode into the same InferRequest and call the same Service;
// this package also holds the encodings they share (JSON tensor data and
// the raw little-endian form of gRPC's raw_input_contents and REST's
// binary tensor extension).
//
// A served model is anything with a Signature and an Infer method: ONNX
// models through a TensorModel, OCR models through an OCRModel that takes
// encoded images as BYTES and answers with the OCR result as JSON.
//
// The Service checks every request against the model's signature (input
// names, datatypes, ranks, fixed dimensions, element counts) before a
// model sees it, and bounds what one request may ask for (tensors,
// elements): a model never runs on a tensor it did not declare. The package
// never schedules work itself; a Model's runner decides how runs share the
// workers (see engine/batch).
package oip
