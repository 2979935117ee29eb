package oip

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/visionserve/visionserve/internal/engine"
)

// Extensions are the protocol extensions the server supports, reported in
// the server metadata. binary_tensor_data is REST's binary tensor extension.
var Extensions = []string{"binary_tensor_data"}

// Config configures a Service.
type Config struct {
	// Name and Version identify the server in its metadata.
	Name    string
	Version string
	Limits  Limits
	// Ready reports nil when the server takes inference traffic; nil
	// means always ready.
	Ready func() error
}

// ServerMetadata is the answer to GET /v2 and ServerMetadata.
type ServerMetadata struct {
	Name       string   `json:"name"`
	Version    string   `json:"version"`
	Extensions []string `json:"extensions"`
}

// ModelMetadata is the answer to GET /v2/models/{m} and ModelMetadata.
type ModelMetadata struct {
	Name     string              `json:"name"`
	Versions []string            `json:"versions"`
	Platform string              `json:"platform"`
	Inputs   []engine.TensorInfo `json:"inputs"`
	Outputs  []engine.TensorInfo `json:"outputs"`
}

// Service is the protocol core both transports call.
type Service struct {
	cfg    Config
	models ModelSource
	log    *slog.Logger
}

// NewService returns a service over models. log may be nil.
func NewService(cfg Config, models ModelSource, log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg.Limits = cfg.Limits.WithDefaults()
	if cfg.Name == "" {
		cfg.Name = "visionserve"
	}
	return &Service{cfg: cfg, models: models, log: log.With("component", "oip")}
}

// Limits returns the request limits, for transports that decode tensors.
func (s *Service) Limits() Limits { return s.cfg.Limits }

// ServerMetadata describes the server.
func (s *Service) ServerMetadata() ServerMetadata {
	return ServerMetadata{Name: s.cfg.Name, Version: s.cfg.Version, Extensions: slices.Clone(Extensions)}
}

// Ready reports nil when the server takes inference traffic.
func (s *Service) Ready() error {
	if s.cfg.Ready == nil {
		return nil
	}
	return s.cfg.Ready()
}

// ModelMetadata describes a model version.
func (s *Service) ModelMetadata(name, version string) (ModelMetadata, error) {
	h, release, err := s.models.Acquire(name, version)
	if err != nil {
		return ModelMetadata{}, err
	}
	defer release()
	sig := h.Model.Signature()
	return ModelMetadata{Name: h.Name, Versions: slices.Clone(h.Versions), Platform: sig.Platform,
		Inputs: cloneInfos(sig.Inputs), Outputs: cloneInfos(sig.Outputs)}, nil
}

func cloneInfos(in []engine.TensorInfo) []engine.TensorInfo {
	out := make([]engine.TensorInfo, len(in))
	for i, t := range in {
		out[i] = engine.TensorInfo{Name: t.Name, DType: t.DType, Shape: slices.Clone(t.Shape)}
	}
	return out
}

// ModelReady reports whether a model version is ready: it is when it is
// served and the server is ready. An unknown model is an error.
func (s *Service) ModelReady(name, version string) (bool, error) {
	_, release, err := s.models.Acquire(name, version)
	if err != nil {
		return false, err
	}
	release()
	return s.Ready() == nil, nil
}

// Infer checks req against the model's signature and the limits, runs the
// model and returns the requested outputs.
func (s *Service) Infer(ctx context.Context, req *InferRequest) (*InferResponse, error) {
	if n := len(req.Inputs) + len(req.Outputs); n > s.cfg.Limits.MaxTensors {
		return nil, tooLargef("%d tensors in one request; the limit is %d", n, s.cfg.Limits.MaxTensors)
	}
	h, release, err := s.models.Acquire(req.ModelName, req.ModelVersion)
	if err != nil {
		return nil, err
	}
	defer release()
	sig := h.Model.Signature()
	inputs, err := arrange(sig.Inputs, req.Inputs, s.cfg.Limits.NewBudget())
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", h.Name, err)
	}
	pick, err := pickOutputs(sig.Outputs, req.Outputs)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", h.Name, err)
	}
	outs, err := h.Model.Infer(ctx, inputs, req.Parameters)
	if err != nil {
		return nil, err
	}
	if len(outs) != len(sig.Outputs) {
		return nil, fmt.Errorf("oip: model %s returned %d outputs, its signature has %d", h.Name, len(outs), len(sig.Outputs))
	}
	resp := &InferResponse{ModelName: h.Name, ModelVersion: h.Version, ID: req.ID, Outputs: make([]Output, len(pick))}
	for i, k := range pick {
		resp.Outputs[i] = Output{Name: sig.Outputs[k].Name, Tensor: outs[k]}
	}
	return resp, nil
}

// arrange puts the request's inputs in the model's order after checking
// each against its declaration.
func arrange(want []engine.TensorInfo, in []Input, budget *Budget) ([]engine.Tensor, error) {
	byName := make(map[string]int, len(in))
	for i, t := range in {
		if _, dup := byName[t.Name]; dup {
			return nil, invalidf("input %q is given twice", t.Name)
		}
		byName[t.Name] = i
	}
	for _, t := range in {
		if !slices.ContainsFunc(want, func(w engine.TensorInfo) bool { return w.Name == t.Name }) {
			return nil, invalidf("the model has no input %q (inputs: %s)", t.Name, infoList(want))
		}
	}
	out := make([]engine.Tensor, len(want))
	for k, w := range want {
		i, ok := byName[w.Name]
		if !ok {
			return nil, invalidf("input %q is missing (inputs: %s)", w.Name, infoList(want))
		}
		t := in[i].Tensor
		if _, err := budget.Take(w.Name, t.Shape); err != nil {
			return nil, err
		}
		if t.DType != w.DType {
			return nil, invalidf("input %q: the model takes %s, got %s", w.Name, w.DType, t.DType)
		}
		if !shapeFits(w.Shape, t.Shape) {
			return nil, invalidf("input %q: the model takes shape %s, got %s", w.Name, shapeString(w.Shape), shapeString(t.Shape))
		}
		if err := t.Validate(); err != nil {
			return nil, invalidf("input %q: %v", w.Name, err)
		}
		out[k] = t
	}
	return out, nil
}

func shapeFits(want, got []int64) bool {
	if len(want) != len(got) {
		return false
	}
	for i, d := range want {
		if d >= 0 && got[i] != d {
			return false
		}
	}
	return true
}

func pickOutputs(all []engine.TensorInfo, req []RequestedOutput) ([]int, error) {
	if len(req) == 0 {
		pick := make([]int, len(all))
		for i := range pick {
			pick[i] = i
		}
		return pick, nil
	}
	pick := make([]int, 0, len(req))
	for _, r := range req {
		k := slices.IndexFunc(all, func(o engine.TensorInfo) bool { return o.Name == r.Name })
		if k < 0 {
			return nil, invalidf("the model has no output %q (outputs: %s)", r.Name, infoList(all))
		}
		if slices.Contains(pick, k) {
			return nil, invalidf("output %q is requested twice", r.Name)
		}
		pick = append(pick, k)
	}
	return pick, nil
}

func infoList(infos []engine.TensorInfo) string {
	parts := make([]string, len(infos))
	for i, t := range infos {
		parts[i] = fmt.Sprintf("%s %s%s", t.Name, t.DType, shapeString(t.Shape))
	}
	return strings.Join(parts, ", ")
}

func shapeString(shape []int64) string {
	parts := make([]string, len(shape))
	for i, d := range shape {
		parts[i] = fmt.Sprint(d)
	}
	return "[" + strings.Join(parts, ",") + "]"
}
