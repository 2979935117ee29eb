package oip

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/visionserve/visionserve/internal/engine"
)

// Errors the transports map to statuses.
var (
	// ErrModelNotFound: no served model has the requested name.
	ErrModelNotFound = errors.New("model not found")
	// ErrVersionNotFound: the model is served, but not in the requested version.
	ErrVersionNotFound = errors.New("model version not found")
	// ErrInvalidRequest: the request does not fit the protocol or the
	// model's signature (unknown or missing input, wrong datatype or
	// shape, data that does not match its shape). The message says which.
	ErrInvalidRequest = errors.New("invalid inference request")
	// ErrTooLarge: the request asks for more tensors or elements than the
	// server's limits allow.
	ErrTooLarge = errors.New("inference request too large")
)

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidRequest, fmt.Sprintf(format, args...))
}

func tooLargef(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrTooLarge, fmt.Sprintf(format, args...))
}

// Parameters are the protocol's free-form parameters of a request, a
// tensor or a response. Values are bool, int64, float64 or string.
type Parameters map[string]any

// String returns the string parameter key; ok is false when it is absent.
// A value of another type is an ErrInvalidRequest.
func (p Parameters) String(key string) (v string, ok bool, err error) {
	raw, present := p[key]
	if !present {
		return "", false, nil
	}
	s, isString := raw.(string)
	if !isString {
		return "", false, invalidf("parameter %q must be a string, got %T", key, raw)
	}
	return s, true, nil
}

// Bool returns the bool parameter key (false when absent).
func (p Parameters) Bool(key string) (bool, error) {
	raw, present := p[key]
	if !present {
		return false, nil
	}
	b, ok := raw.(bool)
	if !ok {
		return false, invalidf("parameter %q must be a boolean, got %T", key, raw)
	}
	return b, nil
}

// Int returns the integer parameter key; ok is false when it is absent.
func (p Parameters) Int(key string) (v int64, ok bool, err error) {
	raw, present := p[key]
	if !present {
		return 0, false, nil
	}
	switch n := raw.(type) {
	case int64:
		return n, true, nil
	case float64:
		if n == float64(int64(n)) {
			return int64(n), true, nil
		}
	}
	return 0, false, invalidf("parameter %q must be an integer, got %v", key, raw)
}

// Input is one named input tensor of a request.
type Input struct {
	Name string
	engine.Tensor
	Parameters Parameters
}

// RequestedOutput names an output the client wants back.
type RequestedOutput struct {
	Name       string
	Parameters Parameters
}

// InferRequest is one inference request, as every transport decodes it.
type InferRequest struct {
	ModelName    string
	ModelVersion string // "" lets the model source choose
	ID           string
	Parameters   Parameters
	Inputs       []Input
	// Outputs lists the outputs to return, in that order; empty means
	// every output of the model, in the model's order.
	Outputs []RequestedOutput
}

// Output is one output tensor of a response.
type Output struct {
	Name string
	engine.Tensor
	Parameters Parameters
}

// InferResponse is the answer to an InferRequest.
type InferResponse struct {
	ModelName    string
	ModelVersion string
	ID           string
	Parameters   Parameters
	Outputs      []Output
}

// Signature describes what a model takes and returns. Shapes use -1 for a
// dimension of any size.
type Signature struct {
	Platform string
	Inputs   []engine.TensorInfo
	Outputs  []engine.TensorInfo
}

// Model is one loaded model version that answers inference requests.
type Model interface {
	// Signature describes the model; it does not change while the model
	// is loaded.
	Signature() Signature
	// Infer runs the model. inputs are in the order of Signature().Inputs
	// and have already been checked against it; Infer returns one tensor
	// per output, in the order of Signature().Outputs. It must return
	// promptly once ctx is done. params are the request's parameters.
	Infer(ctx context.Context, inputs []engine.Tensor, params Parameters) ([]engine.Tensor, error)
}

// Handle is a model version resolved by a ModelSource.
type Handle struct {
	Name    string
	Version string
	// Versions lists every version served under Name.
	Versions []string
	Model    Model
}

// ModelSource resolves a model name and version ("" lets the source
// choose) and pins that version until release is called.
type ModelSource interface {
	Acquire(name, version string) (h Handle, release func(), err error)
}

// StaticModels is a fixed set of models, one version each. It serves
// configurations without a model repository.
type StaticModels struct {
	byName map[string]Handle
}

// NewStaticModels returns a source over handles; names must be unique.
func NewStaticModels(handles ...Handle) (*StaticModels, error) {
	s := &StaticModels{byName: make(map[string]Handle, len(handles))}
	for _, h := range handles {
		if h.Name == "" || h.Model == nil {
			return nil, fmt.Errorf("oip: a model needs a name and an implementation")
		}
		if _, dup := s.byName[h.Name]; dup {
			return nil, fmt.Errorf("oip: model %q is listed twice", h.Name)
		}
		h.Versions = []string{h.Version}
		s.byName[h.Name] = h
	}
	return s, nil
}

// Names returns the served model names, sorted.
func (s *StaticModels) Names() []string {
	names := make([]string, 0, len(s.byName))
	for n := range s.byName {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Acquire implements ModelSource.
func (s *StaticModels) Acquire(name, version string) (Handle, func(), error) {
	h, ok := s.byName[name]
	if !ok {
		served := strings.Join(s.Names(), ", ")
		if served == "" {
			served = "none"
		}
		return Handle{}, nil, fmt.Errorf("%w: no model named %q (served: %s)", ErrModelNotFound, name, served)
	}
	if version != "" && version != h.Version {
		return Handle{}, nil, fmt.Errorf("%w: model %q has version %s, not %s", ErrVersionNotFound, name, h.Version, version)
	}
	return h, func() {}, nil
}
