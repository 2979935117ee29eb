// Package loader turns a model's files and runtime options into a loaded,
// servable model: one function per kind (Tesseract, PPOCR, ONNX), each
// taking where the files are, the runtime options as the JSON object a
// model package manifest carries under "runtime", and the process
// resources it may use (Env). These functions are what the model
// repository's loaders call per package kind, and what the configuration
// file's models list calls.
//
// PPOCR and ONNX read every model file once, through Files, and build
// their engines from those bytes, never from a path: given a verified
// model package, which checks each file's digest as it reads it, what they
// load is what was signed, whatever happens to the directory meanwhile. A
// loader never checks signatures itself (the repository does, before it
// calls one) and never starts serving: it returns a Model that is ready to
// use, or an error after freeing everything it had loaded. It refuses file
// names that leave the model's directory.
package loader
