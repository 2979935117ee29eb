package gallery

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Sentinel errors callers branch on.
var (
	// ErrGalleryNotFound: no gallery has that name.
	ErrGalleryNotFound = errors.New("gallery not found")
	// ErrSubjectNotFound: the gallery has no faces for that subject.
	ErrSubjectNotFound = errors.New("subject not found")
	// ErrInvalidName: a gallery or subject name breaks the naming rules.
	ErrInvalidName = errors.New("invalid name")
	// ErrLimit: a configured bound (galleries, faces) would be exceeded.
	ErrLimit = errors.New("gallery limit reached")
	// ErrEmbedding: an embedding of the wrong length, or not finite.
	ErrEmbedding = errors.New("invalid embedding")
	// ErrClosed: the manager or store was closed.
	ErrClosed = errors.New("gallery store closed")
)

// LimitError says which bound a write would exceed; it wraps ErrLimit.
type LimitError struct {
	What  string // "galleries", "faces", "faces per subject"
	Limit int
}

// Error implements error.
func (e *LimitError) Error() string {
	return fmt.Sprintf("%v: at most %d %s", ErrLimit, e.Limit, e.What)
}

// Unwrap lets errors.Is match ErrLimit.
func (e *LimitError) Unwrap() error { return ErrLimit }

// Naming rules. Gallery names appear in URLs and configuration, so they
// are plain; subject names are often people's names or external ids, so
// any printable text without "/" is allowed. Tenant names come from
// credentials (an API key's tenant, a JWT's tenant claim), not from
// requests, and are only bounded.
const (
	MaxGalleryName = 64
	MaxSubjectName = 128
	MaxTenantName  = 256
)

// DefaultTenant is the tenant of every principal that names none: an API
// key configured without a tenant, a JWT without the tenant claim, and the
// anonymous principal of a server with authentication off. They share its
// galleries, and galleries stored before galleries had tenants belong to
// it. The same principals share the default rate limits (package
// ratelimit), so "no tenant" means one tenant in both places.
const DefaultTenant = ""

// Ref names a gallery: the tenant that owns it and its name in that
// tenant's namespace. Namespaces never meet: two tenants' galleries of one
// name are two galleries, and no request can name another tenant's
// gallery, so another tenant's gallery is indistinguishable from one that
// does not exist.
type Ref struct {
	Tenant string
	Name   string
}

// String names the gallery in logs.
func (r Ref) String() string {
	if r.Tenant == DefaultTenant {
		return r.Name
	}
	return r.Tenant + "/" + r.Name
}

// Validate checks the tenant and the gallery name.
func (r Ref) Validate() error {
	if err := ValidTenant(r.Tenant); err != nil {
		return err
	}
	return ValidGalleryName(r.Name)
}

// ValidTenant reports whether name is at most 256 bytes of UTF-8 without
// NUL (which neither store can hold).
func ValidTenant(name string) error {
	if len(name) > MaxTenantName || !utf8.ValidString(name) || strings.ContainsRune(name, 0) {
		return fmt.Errorf("%w: the credential's tenant must be at most %d bytes of UTF-8 without NUL", ErrInvalidName, MaxTenantName)
	}
	return nil
}

// ValidGalleryName reports whether name is 1-64 of A-Z a-z 0-9 . _ -,
// starting with a letter or digit.
func ValidGalleryName(name string) error {
	if name == "" || len(name) > MaxGalleryName {
		return fmt.Errorf("%w: gallery name must be 1 to %d characters", ErrInvalidName, MaxGalleryName)
	}
	for i, r := range name {
		ok := r < utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r) || (i > 0 && strings.ContainsRune("._-", r)))
		if !ok {
			return fmt.Errorf("%w: gallery name %q: use letters, digits, '.', '_' and '-', starting with a letter or digit", ErrInvalidName, name)
		}
	}
	return nil
}

// ValidSubjectName reports whether name is 1-128 bytes of printable UTF-8
// without "/".
func ValidSubjectName(name string) error {
	if name == "" || len(name) > MaxSubjectName || !utf8.ValidString(name) {
		return fmt.Errorf("%w: subject name must be 1 to %d bytes of UTF-8", ErrInvalidName, MaxSubjectName)
	}
	for _, r := range name {
		if !unicode.IsPrint(r) || r == '/' {
			return fmt.Errorf("%w: subject name %q holds %q; use printable characters other than '/'", ErrInvalidName, name, r)
		}
	}
	return nil
}

// Face is one enrolled face.
type Face struct {
	ID        string
	Gallery   Ref
	Subject   string
	Model     string // identifies the embedder; embeddings of different models do not compare
	Embedding []float32
	Created   time.Time
}

// FaceInfo is a face without its embedding, for listings.
type FaceInfo struct {
	ID      string    `json:"face_id"`
	Created time.Time `json:"created"`
}

// SubjectInfo is one subject of a gallery's listing.
type SubjectInfo struct {
	Name  string `json:"subject"`
	Faces int    `json:"faces"`
}

// Op is the kind of a change.
type Op string

// Change kinds.
const (
	OpCreateGallery Op = "create_gallery"
	OpAddFace       Op = "add_face"
	OpDeleteSubject Op = "delete_subject"
	OpDeleteGallery Op = "delete_gallery"
)

// Event is one change to the galleries. Seq orders the events of a shared
// store (0 for the embedded one, whose events are applied as they happen).
type Event struct {
	Seq     uint64
	Op      Op
	Gallery Ref
	Subject string    // OpAddFace, OpDeleteSubject
	Face    *Face     // OpAddFace; nil when the face was deleted since
	Created time.Time // OpCreateGallery
}

// Store keeps galleries durably. Every write returns only once the change
// is committed, with the event that describes it.
type Store interface {
	// Load calls fn with an event for every gallery (OpCreateGallery) and
	// then every face (OpAddFace), and returns the sequence number the
	// snapshot reflects.
	Load(ctx context.Context, fn func(Event) error) (seq uint64, err error)
	// CreateGallery creates the gallery; created is false (and the event
	// zero) when it existed already.
	CreateGallery(ctx context.Context, g Ref, at time.Time) (ev Event, created bool, err error)
	// DeleteGallery removes the gallery and all its faces, and reports
	// how many faces; ErrGalleryNotFound when it is absent.
	DeleteGallery(ctx context.Context, g Ref) (Event, int, error)
	// AddFace stores f; ErrGalleryNotFound when its gallery is absent.
	// A store that several processes write refuses a face whose embedder
	// id none of the gallery's faces carry, if it holds any (a
	// MismatchError); the Manager checks that itself for the others.
	AddFace(ctx context.Context, f Face) (Event, error)
	// DeleteSubject removes every face of the subject and reports how
	// many; ErrGalleryNotFound or ErrSubjectNotFound when there is none.
	DeleteSubject(ctx context.Context, g Ref, subject string) (Event, int, error)
	// Faces lists the faces of a subject, oldest first.
	Faces(ctx context.Context, g Ref, subject string) ([]FaceInfo, error)
	// Subjects lists up to limit subjects of the gallery whose names
	// sort after after, in byte order (the same in both stores), with
	// their numbers of faces; ErrGalleryNotFound when it is absent.
	Subjects(ctx context.Context, g Ref, after string, limit int) ([]SubjectInfo, error)
	Close() error
}

// Feed is implemented by stores that other processes write too: the
// Manager follows their change log.
type Feed interface {
	// Changes returns up to limit events with sequence numbers above
	// after, in order. A gap (the first event is not after+1) means the
	// log was pruned past after, and the caller must reload.
	Changes(ctx context.Context, after uint64, limit int) ([]Event, error)
	// Listen calls wake whenever new changes may have been committed,
	// until ctx ends. It reconnects by itself and calls wake after each
	// reconnection, since notifications may have been missed meanwhile.
	Listen(ctx context.Context, wake func()) error
	// Prune drops log entries older than keep, never the newest one.
	Prune(ctx context.Context, keep time.Duration) error
}

// newFaceID returns a random 128-bit id as 32 hex digits.
func newFaceID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

// checkEmbedding rejects vectors of the wrong length or with non-finite
// values.
func checkEmbedding(v []float32, dim int) error {
	if len(v) != dim {
		return fmt.Errorf("%w: length %d, want %d", ErrEmbedding, len(v), dim)
	}
	for _, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return fmt.Errorf("%w: not finite", ErrEmbedding)
		}
	}
	return nil
}
