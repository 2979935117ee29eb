package auth

import (
	"fmt"
	"slices"
	"strings"
)

// Scope is a permission a principal holds and a route requires.
type Scope string

// The scopes. Public is not a scope a principal can hold: a route table
// uses it to say "no credentials needed", so that every route names its
// requirement explicitly.
const (
	// ScopeInfer: run inference (OCR, faces, jobs, the inference protocol)
	// and read galleries.
	ScopeInfer Scope = "infer"
	// ScopeModelsAdmin: the model administration API and pprof, both on the
	// admin listener only.
	ScopeModelsAdmin Scope = "models:admin"
	// ScopeGalleriesWrite: create and change face galleries.
	ScopeGalleriesWrite Scope = "galleries:write"
	// ScopeReviewsWrite: store and delete reviewed OCR lines, the data a
	// model's confidence calibration is fitted on (reading them is infer).
	ScopeReviewsWrite Scope = "reviews:write"

	// Public marks routes served without credentials (health, metrics,
	// the API description).
	Public Scope = "public"
	// Authenticated marks routes any verified principal may call, whatever
	// its scopes (GET /v1/whoami: a credential may always ask what it may
	// do). Not grantable either.
	Authenticated Scope = "authenticated"
)

// Scopes lists the grantable scopes.
var Scopes = []Scope{ScopeInfer, ScopeModelsAdmin, ScopeGalleriesWrite, ScopeReviewsWrite}

// ParseScope validates a grantable scope name.
func ParseScope(s string) (Scope, error) {
	if sc := Scope(s); slices.Contains(Scopes, sc) {
		return sc, nil
	}
	return "", fmt.Errorf("unknown scope %q (use %s)", s, scopeList())
}

func scopeList() string {
	names := make([]string, len(Scopes))
	for i, s := range Scopes {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}

// ScopeSet is a set of grantable scopes.
type ScopeSet uint8

func bit(s Scope) ScopeSet {
	if i := slices.Index(Scopes, s); i >= 0 {
		return 1 << i
	}
	return 0
}

// NewScopeSet returns the set of the grantable scopes among ss; others are
// ignored (a token may carry scopes meant for other services).
func NewScopeSet(ss ...Scope) ScopeSet {
	var set ScopeSet
	for _, s := range ss {
		set |= bit(s)
	}
	return set
}

// Has reports whether s is in the set.
func (set ScopeSet) Has(s Scope) bool { b := bit(s); return b != 0 && set&b == b }

// List returns the scopes in the set, in the order of Scopes.
func (set ScopeSet) List() []Scope {
	var out []Scope
	for _, s := range Scopes {
		if set.Has(s) {
			out = append(out, s)
		}
	}
	return out
}

// String is the space-separated form OAuth uses.
func (set ScopeSet) String() string {
	l := set.List()
	names := make([]string, len(l))
	for i, s := range l {
		names[i] = string(s)
	}
	return strings.Join(names, " ")
}
