// Package onnx runs ONNX models with ONNX Runtime through
// github.com/yalue/onnxruntime_go.
//
// It owns the process-wide runtime (Init loads the shared library once per
// process; LibraryPath finds it), sessions with explicit thread settings and
// the model's input/output metadata, and a Pool that hands each session to
// one goroutine at a time. A Pool is an engine.TensorRunner that is safe for
// concurrent use; a Session on its own is not.
//
// The package never frees a session that a caller still holds, never lets
// two goroutines run one session at once, and never unloads the runtime: a
// process keeps its ONNX Runtime environment until it exits.
package onnx
