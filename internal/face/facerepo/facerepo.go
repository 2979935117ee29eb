// Package facerepo connects the face core to the model repository: the
// loaders for packages of kinds face-detect (YuNet) and face-embed
// (MobileFaceNet, or any embedder of the same interface), and Source, the
// face.ModelSource that pins repository versions for each request.
//
// The loaders read the ONNX file through modelrepo.Package.ReadFile, which
// hashes the bytes once more against the verified digests, and build the
// ONNX Runtime sessions from those bytes: no file is opened again after
// verification, so what a version runs is what its signature covers.
package facerepo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/visionserve/visionserve/internal/engine/onnx"
	"github.com/visionserve/visionserve/internal/face"
	"github.com/visionserve/visionserve/internal/modelrepo"
)

// The package kinds this package loads.
const (
	KindDetect = "face-detect"
	KindEmbed  = "face-embed"
)

// DetectRuntime is the manifest runtime object of a face-detect package.
// Every key is optional.
type DetectRuntime struct {
	// File is the ONNX file in the package; "" means its only .onnx file.
	File string `json:"file"`
	// Detect are the detection parameters, over face.DefaultDetectParams.
	Detect face.DetectParams `json:"detect"`
	// Session settings: sessions (default: the loader's), intra_op_threads
	// and inter_op_threads (default 1).
	onnx.Options
}

// EmbedRuntime is the manifest runtime object of a face-embed package.
// Every key is optional.
type EmbedRuntime struct {
	// File is the ONNX file in the package; "" means its only .onnx file.
	File string `json:"file"`
	// Embed are the embedding parameters (mean, std, flip), over
	// face.DefaultEmbedParams. A mean or std other than the default is
	// another embedding space (face.EmbedderID).
	Embed face.EmbedParams `json:"embed"`
	onnx.Options
}

// Loaders builds the repository loaders of both kinds.
type Loaders struct {
	// Sessions is the number of ONNX sessions of a version whose runtime
	// does not say (one per worker).
	Sessions int
	// ONNXLibrary is the ONNX Runtime library ("" = the environment or the
	// setup script's cache).
	ONNXLibrary string
	// Run runs the session builds and each warm-up inference on a worker
	// of the server's scheduler; nil runs them directly.
	Run face.RunFunc
}

// Map returns the loaders by kind, for modelrepo.Options.Loaders.
func (l Loaders) Map() map[string]modelrepo.Loader {
	return map[string]modelrepo.Loader{
		KindDetect: modelrepo.LoaderFunc(l.loadDetector),
		KindEmbed:  modelrepo.LoaderFunc(l.loadEmbedder),
	}
}

func (l Loaders) options() onnx.Options {
	o := onnx.DefaultOptions()
	o.Sessions = max(l.Sessions, 1)
	return o
}

func (l Loaders) loadDetector(ctx context.Context, pkg *modelrepo.Package) (modelrepo.Instance, error) {
	rt := DetectRuntime{Detect: face.DefaultDetectParams(), Options: l.options()}
	if err := decodeRuntime(pkg, &rt); err != nil {
		return nil, err
	}
	if err := rt.Detect.Validate(); err != nil {
		return nil, invalidRuntime(pkg, err)
	}
	data, err := l.read(ctx, pkg, rt.File, rt.Options)
	if err != nil {
		return nil, err
	}
	var m *face.DetectorModel
	err = l.run(ctx, func(context.Context) error {
		var err error
		m, err = face.LoadDetector(data, rt.Detect, rt.Options)
		return err
	})
	if err != nil {
		_ = m.Close(context.Background())
		return nil, err
	}
	return &DetectorInstance{model: m, run: l.Run}, nil
}

func (l Loaders) loadEmbedder(ctx context.Context, pkg *modelrepo.Package) (modelrepo.Instance, error) {
	rt := EmbedRuntime{Embed: face.DefaultEmbedParams(), Options: l.options()}
	if err := decodeRuntime(pkg, &rt); err != nil {
		return nil, err
	}
	if err := rt.Embed.Validate(); err != nil {
		return nil, invalidRuntime(pkg, err)
	}
	data, err := l.read(ctx, pkg, rt.File, rt.Options)
	if err != nil {
		return nil, err
	}
	var m *face.EmbedderModel
	err = l.run(ctx, func(context.Context) error {
		var err error
		m, err = face.LoadEmbedder(data, rt.Embed, rt.Options)
		return err
	})
	if err != nil {
		_ = m.Close(context.Background())
		return nil, err
	}
	return &EmbedderInstance{model: m, run: l.Run}, nil
}

func (l Loaders) run(ctx context.Context, fn func(context.Context) error) error {
	if l.Run == nil {
		return fn(ctx)
	}
	return l.Run(ctx, fn)
}

// read checks the session options, picks the model file and reads it
// through the verified package.
func (l Loaders) read(ctx context.Context, pkg *modelrepo.Package, file string, o onnx.Options) ([]byte, error) {
	if err := o.Validate(); err != nil {
		return nil, invalidRuntime(pkg, err)
	}
	file, err := modelFile(pkg, file)
	if err != nil {
		return nil, err
	}
	if _, err := onnx.Init(l.ONNXLibrary); err != nil {
		return nil, err
	}
	return pkg.ReadFile(ctx, file)
}

// modelFile returns file, or the package's only .onnx file.
func modelFile(pkg *modelrepo.Package, file string) (string, error) {
	if file != "" {
		if _, ok := pkg.Files[file]; !ok {
			return "", modelrepo.NewError(modelrepo.ReasonManifestInvalid, "manifest.json",
				fmt.Sprintf("runtime file %q is not a file of the package", file))
		}
		return file, nil
	}
	var onnxFiles []string
	for p := range pkg.Files {
		if strings.EqualFold(path.Ext(p), ".onnx") {
			onnxFiles = append(onnxFiles, p)
		}
	}
	slices.Sort(onnxFiles)
	if len(onnxFiles) != 1 {
		return "", modelrepo.NewError(modelrepo.ReasonManifestInvalid, "manifest.json",
			fmt.Sprintf("a %s package holds %d .onnx files (%s): name the model with the runtime key \"file\"", pkg.Kind, len(onnxFiles), strings.Join(onnxFiles, ", ")))
	}
	return onnxFiles[0], nil
}

// decodeRuntime decodes the manifest's runtime object over the defaults in
// v, refusing unknown keys: a misspelt option must not silently keep its
// default.
func decodeRuntime(pkg *modelrepo.Package, v any) error {
	raw := bytes.TrimSpace(pkg.Runtime)
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return invalidRuntime(pkg, err)
	}
	if dec.More() {
		return invalidRuntime(pkg, errors.New("data after the JSON object"))
	}
	return nil
}

func invalidRuntime(pkg *modelrepo.Package, err error) error {
	return &modelrepo.Error{Reason: modelrepo.ReasonManifestInvalid, Path: "manifest.json", Detail: "runtime for " + pkg.Kind, Err: err}
}

// closeTimeout bounds Close: the repository closes a version after it
// drained, so no run should be in progress.
const closeTimeout = time.Minute

// DetectorInstance is a loaded face-detect version.
type DetectorInstance struct {
	model *face.DetectorModel
	run   face.RunFunc
}

var _ modelrepo.Instance = (*DetectorInstance)(nil)

// FaceDetector returns the loaded detector.
func (i *DetectorInstance) FaceDetector() *face.DetectorModel { return i.model }

// Warmup detects a synthetic scene with every session (it may find no
// face; it must run and return outputs the decoder accepts).
func (i *DetectorInstance) Warmup(ctx context.Context) error { return i.model.Warmup(ctx, i.run) }

// Close frees the sessions.
func (i *DetectorInstance) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	return i.model.Close(ctx)
}

// EmbedderInstance is a loaded face-embed version.
type EmbedderInstance struct {
	model *face.EmbedderModel
	run   face.RunFunc
}

var _ modelrepo.Instance = (*EmbedderInstance)(nil)

// FaceEmbedder returns the loaded embedder.
func (i *EmbedderInstance) FaceEmbedder() *face.EmbedderModel { return i.model }

// Warmup embeds a synthetic aligned face with every session: each must
// return a finite, non-zero vector of the model's length.
func (i *EmbedderInstance) Warmup(ctx context.Context) error { return i.model.Warmup(ctx, i.run) }

// Close frees the sessions.
func (i *EmbedderInstance) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	return i.model.Close(ctx)
}
