package ocr

import (
	"fmt"
	"strings"
)

// StaticModels is a fixed set of loaded models, the first one the default.
// It serves configurations without a model repository; the repository
// implements ModelSource with versions and hot swap.
type StaticModels struct {
	models []*Model
}

// NewStaticModels returns a source over models; it needs at least one.
func NewStaticModels(models ...*Model) (*StaticModels, error) {
	if len(models) == 0 {
		return nil, fmt.Errorf("ocr: no models configured")
	}
	return &StaticModels{models: models}, nil
}

// Models returns the served models.
func (s *StaticModels) Models() []*Model { return s.models }

// Acquire implements ModelSource. A name selects that model; otherwise a
// language selects the first model reading it; otherwise the default.
func (s *StaticModels) Acquire(sel Selector) (*Model, func(), error) {
	m, err := s.find(sel)
	if err != nil {
		return nil, nil, err
	}
	if sel.Version != "" && sel.Version != m.Ref.Version {
		return nil, nil, fmt.Errorf("%w: %s has version %s, not %s", ErrVersionNotFound, m.Ref.Name, m.Ref.Version, sel.Version)
	}
	if sel.Lang != "" && sel.Lang != m.Languages {
		return nil, nil, fmt.Errorf("%w: model %s reads %q, not %q", ErrModelNotFound, m.Ref.Name, m.Languages, sel.Lang)
	}
	return m, func() {}, nil
}

func (s *StaticModels) find(sel Selector) (*Model, error) {
	switch {
	case sel.Name != "":
		for _, m := range s.models {
			if m.Ref.Name == sel.Name {
				return m, nil
			}
		}
		return nil, fmt.Errorf("%w: no model named %q (served: %s)", ErrModelNotFound, sel.Name, s.names())
	case sel.Lang != "":
		for _, m := range s.models {
			if m.Languages == sel.Lang {
				return m, nil
			}
		}
		return nil, fmt.Errorf("%w: no model reads %q (served: %s)", ErrModelNotFound, sel.Lang, s.names())
	}
	return s.models[0], nil
}

func (s *StaticModels) names() string {
	var out []string
	for _, m := range s.models {
		out = append(out, m.Ref.Name+" ("+m.Languages+")")
	}
	return strings.Join(out, ", ")
}
