package ocrrepo

import (
	"errors"
	"fmt"

	"github.com/visionserve/visionserve/internal/modelrepo"
	"github.com/visionserve/visionserve/internal/ocr"
)

// Repository is what Source needs of a model repository.
type Repository interface {
	Acquire(sel modelrepo.Selector) (*modelrepo.Handle, error)
	Names() []string
}

// ocrInstance is a loaded version the OCR core can run: any kind's
// Instance that carries an ocr.Model.
type ocrInstance interface {
	OCRModel() *ocr.Model
}

// Source is the ocr.ModelSource of a server with a model repository. A
// request names a model, or a language (the first model reading it, the
// default model first), or neither (the default model); it may pin a
// version and carry a sticky routing key.
type Source struct {
	Repo Repository
	// Default is the model that answers requests naming none.
	Default string
}

var _ ocr.ModelSource = (*Source)(nil)

// Acquire implements ocr.ModelSource.
func (s *Source) Acquire(sel ocr.Selector) (*ocr.Model, func(), error) {
	pin := 0
	if sel.Version != "" {
		var ok bool
		if pin, ok = modelrepo.ParseVersion(sel.Version); !ok {
			return nil, nil, fmt.Errorf("%w: version %q is not a positive integer", ocr.ErrVersionNotFound, sel.Version)
		}
	}
	if sel.Name == "" && sel.Lang != "" {
		return s.byLanguage(sel, pin)
	}
	name := sel.Name
	if name == "" {
		name = s.Default
	}
	m, release, err := s.acquire(name, pin, sel.Key)
	if err != nil {
		return nil, nil, err
	}
	if sel.Lang != "" && sel.Lang != m.Languages {
		release()
		return nil, nil, fmt.Errorf("%w: model %s reads %q, not %q", ocr.ErrModelNotFound, name, m.Languages, sel.Lang)
	}
	return m, release, nil
}

func (s *Source) byLanguage(sel ocr.Selector, pin int) (*ocr.Model, func(), error) {
	names := []string{s.Default}
	for _, n := range s.Repo.Names() {
		if n != s.Default {
			names = append(names, n)
		}
	}
	for _, name := range names {
		m, release, err := s.acquire(name, pin, sel.Key)
		if err != nil {
			continue
		}
		if m.Languages == sel.Lang {
			return m, release, nil
		}
		release()
	}
	return nil, nil, fmt.Errorf("%w: no ready OCR model reads %q", ocr.ErrModelNotFound, sel.Lang)
}

func (s *Source) acquire(name string, pin int, key string) (*ocr.Model, func(), error) {
	h, err := s.Repo.Acquire(modelrepo.Selector{Model: name, Version: pin, Key: key})
	switch {
	case errors.Is(err, modelrepo.ErrModelNotFound):
		return nil, nil, fmt.Errorf("%w: %v", ocr.ErrModelNotFound, err)
	case errors.Is(err, modelrepo.ErrVersionNotFound):
		return nil, nil, fmt.Errorf("%w: %v", ocr.ErrVersionNotFound, err)
	case errors.Is(err, modelrepo.ErrNoReadyVersion):
		// Both: transports answer 503 (retry), the OCR core's failure
		// reasons (traces, jobs) say version_not_found.
		return nil, nil, fmt.Errorf("%w (%w)", err, ocr.ErrVersionNotFound)
	case err != nil:
		return nil, nil, err
	}
	inst, ok := h.Instance().(ocrInstance)
	if !ok {
		h.Release()
		return nil, nil, fmt.Errorf("%w: %s is a %s model, not an OCR model", ocr.ErrModelNotFound, name, h.Kind())
	}
	return inst.OCRModel(), h.Release, nil
}
