// Package face is the face recognition pipeline and its core service:
// YuNet detection (multi-stride decoding, NMS, a padded second pass for
// faces that fill the frame), similarity alignment of 5 landmarks onto the
// 112x112 ArcFace template, MobileFaceNet embedding (L2-normalised) and
// cosine similarity; an analysis cache keyed by image digest; and the
// Service every transport calls for detect, verify, enroll and identify.
//
// It consumes models only through engine.TensorRunner (LoadDetector and
// LoadEmbedder build ONNX Runtime session pools from bytes: two files, or
// verified packages through package facerepo), and reaches them through a
// ModelSource that pins the versions a request runs on for its whole
// life. It runs inference only inside the server's scheduler, and reads
// images only through imageio's limits. It never stores anything itself:
// galleries belong to package gallery, which it reaches through the small
// Galleries interface.
//
// It never compares embeddings of different embedders: every vector
// carries its embedder's id (EmbedderID), and a gallery is enrolled into
// and searched only with the embedder its faces carry, or the request
// fails (EmbedderError).
//
// eval.go holds the evaluation harness behind the calibrated default
// threshold and the accuracy figures of docs/faces.md.
package face
