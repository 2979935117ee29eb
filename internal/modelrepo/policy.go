package modelrepo

import (
	"errors"
	"fmt"
	"slices"
)

// Policy says which versions of a model are kept loaded: the Latest newest
// loadable versions, plus every version listed in Versions. A version that
// failed is not loadable (until its directory changes), so a failed new
// version never pushes a working one out.
type Policy struct {
	Latest   int   `json:"latest" yaml:"latest"`
	Versions []int `json:"versions,omitempty" yaml:"versions"`
}

// DefaultPolicy keeps the newest loadable version.
func DefaultPolicy() Policy { return Policy{Latest: 1} }

// Validate checks the policy keeps something loaded.
func (p Policy) Validate() error {
	if p.Latest < 0 {
		return fmt.Errorf("latest must be >= 0, got %d", p.Latest)
	}
	if p.Latest == 0 && len(p.Versions) == 0 {
		return errors.New("a policy needs latest >= 1 or a list of versions")
	}
	for _, v := range p.Versions {
		if v < 1 || v > MaxVersion {
			return fmt.Errorf("version %d is not a positive version number", v)
		}
	}
	return nil
}

// wanted returns the versions among candidates (loadable versions) that p
// keeps loaded.
func (p Policy) wanted(candidates []int) map[int]bool {
	sorted := slices.Clone(candidates)
	slices.Sort(sorted)
	want := map[int]bool{}
	for i := len(sorted) - 1; i >= 0 && len(sorted)-i <= p.Latest; i-- {
		want[sorted[i]] = true
	}
	for _, v := range p.Versions {
		if slices.Contains(sorted, v) {
			want[v] = true
		}
	}
	return want
}
