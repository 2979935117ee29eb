// Package loader turns a model's files and runtime options into a loaded,
// servable model: one function per kind (Tesseract, PPOCR, ONNX), each
// taking the directory that holds the files, the runtime options as the
// JSON object a model package manifest carries under "runtime", and the
// process resources it may use (Env). These functions are what the model
// repository's loaders call per package kind; until then the configuration
// file's models list calls them.
//
// A loader never verifies file digests or signatures (the repository does,
// before it calls one) and never starts serving: it returns a Model that
// is ready to use, or an error after freeing everything it had loaded. It
// refuses file names that leave the model's directory.
package loader
