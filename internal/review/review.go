package review

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

// Sentinel errors; the transports map them (internal/failure).
var (
	// ErrNotFound: no review of that id in the caller's tenant.
	ErrNotFound = errors.New("review not found")
	// ErrInvalid: the review's fields break the rules (detail in the
	// wrapping message, safe to show to the client).
	ErrInvalid = errors.New("invalid review")
	// ErrLimit: the tenant holds as many reviews as it may.
	ErrLimit = errors.New("review limit reached")
	// ErrUnavailable: the shared store cannot be reached.
	ErrUnavailable = errors.New("review store unavailable")
	// ErrDisabled: the server keeps no reviews (reviews.store is off).
	ErrDisabled = errors.New("reviews are not enabled on this server")
)

// Bounds of a review's fields.
const (
	MaxText      = 2000 // bytes of the model's text and of the correction
	MaxName      = 256  // bytes of the source name
	MaxModelName = 128
	MaxTenant    = 256
	// MaxListLimit bounds one page of a listing.
	MaxListLimit = 1000
)

// Tiers a line may have been given (ocr.ReviewPolicy).
var tiers = []string{"", "accept", "verify", "review"}

// Model names the model version that read the line.
type Model struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// Source says where the line came from: the file name the client gave,
// the page, and the line's quadrilateral in that page's coordinates (the
// OCR result's box). All optional.
type Source struct {
	Name string         `json:"name,omitempty"`
	Page int            `json:"page"`
	Box  *[4][2]float64 `json:"box,omitempty"`
}

// Review is one corrected line. Image is the line's PNG; the other fields
// are what listings show.
type Review struct {
	ID      string    `json:"id"`
	Tenant  string    `json:"-"`
	Created time.Time `json:"created"`
	// Author is the principal that stored it (key:<name>, jwt:<sub>).
	Author string `json:"author"`
	Model  Model  `json:"model"`
	// Text, Confidence and Tier are what the model answered for the line.
	Text       string  `json:"text"`
	Confidence float64 `json:"confidence"`
	Tier       string  `json:"review,omitempty"`
	// Corrected is the line's right text, as the reviewer typed it.
	Corrected string `json:"corrected"`
	Source    Source `json:"source"`
	// Width and Height are the line image's size in pixels.
	Width  int    `json:"width"`
	Height int    `json:"height"`
	Image  []byte `json:"-"`
}

// Page is a position in a listing: reviews after the id After (ids sort
// by creation), at most Limit of them.
type Page struct {
	After string
	Limit int
}

// Store keeps reviews. Every method takes the tenant; no method reaches
// another tenant's reviews.
type Store interface {
	// Add stores r unless the tenant already holds max reviews
	// (ErrLimit); max <= 0 means no bound.
	Add(ctx context.Context, r Review, max int) error
	// Get returns a review with its image.
	Get(ctx context.Context, tenant, id string) (Review, error)
	// List returns a page of reviews without images, in id order, and
	// whether more follow.
	List(ctx context.Context, tenant string, p Page) ([]Review, bool, error)
	// Each calls fn for every review of the tenant, with its image, in id
	// order, until fn returns an error.
	Each(ctx context.Context, tenant string, fn func(Review) error) error
	// Delete removes a review (ErrNotFound when there is none).
	Delete(ctx context.Context, tenant, id string) error
	Close() error
}

// eachBatch is how many reviews Each reads at a time: an export to a slow
// client must not hold one transaction or query open for its whole length
// (in bbolt, that would stall the file's growth under writers).
const eachBatch = 64

// eachPage calls fn for every review that page hands out, a batch after
// another, from the first: page(after) returns the reviews after the id
// after and whether more follow.
func eachPage(ctx context.Context, fn func(Review) error, page func(after string) ([]Review, bool, error)) error {
	after := ""
	for {
		batch, more, err := page(after)
		if err != nil {
			return err
		}
		for _, r := range batch {
			if err := fn(r); err != nil {
				return err
			}
		}
		if !more || len(batch) == 0 {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		after = batch[len(batch)-1].ID
	}
}

// newID returns a fresh review id: "rv_", the creation time in
// microseconds (16 hex digits, so ids sort by creation) and 8 random hex
// digits. Ids are export file names: they hold nothing but [a-z0-9_].
func newID(at time.Time) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("rv_%016x%s", at.UnixMicro(), hex.EncodeToString(b[:]))
}

// ValidID reports whether id has the form newID makes.
func ValidID(id string) bool {
	if len(id) != 3+16+8 || !strings.HasPrefix(id, "rv_") {
		return false
	}
	for _, c := range id[3:] {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// oneLine checks a text field: valid UTF-8, at most max bytes, no control
// characters (a line has no line breaks; ground truth files are one line).
func oneLine(field, s string, max int) error {
	if len(s) > max {
		return invalid("%s is longer than %d bytes", field, max)
	}
	if !utf8.ValidString(s) {
		return invalid("%s is not valid UTF-8", field)
	}
	if strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return invalid("%s holds a control character (a line break?): a review is one line", field)
	}
	return nil
}

// validate checks everything but the image and the server-set fields.
func (r *Review) validate() error {
	if len(r.Tenant) > MaxTenant || !utf8.ValidString(r.Tenant) || strings.ContainsRune(r.Tenant, 0) {
		return invalid("the credential's tenant must be at most %d bytes of UTF-8 without NUL", MaxTenant)
	}
	for _, f := range []struct {
		name, value string
		max         int
	}{
		{"corrected", r.Corrected, MaxText},
		{"text", r.Text, MaxText},
		{"model", r.Model.Name, MaxModelName},
		{"version", r.Model.Version, MaxModelName},
		{"name", r.Source.Name, MaxName},
	} {
		if err := oneLine(f.name, f.value, f.max); err != nil {
			return err
		}
	}
	if math.IsNaN(r.Confidence) || r.Confidence < 0 || r.Confidence > 1 {
		return invalid("confidence must be in [0,1]")
	}
	found := false
	for _, t := range tiers {
		found = found || r.Tier == t
	}
	if !found {
		return invalid("review tier %q: use accept, verify or review", r.Tier)
	}
	if r.Source.Page < 0 {
		return invalid("page must be >= 0")
	}
	if b := r.Source.Box; b != nil {
		for _, p := range b {
			for _, v := range p {
				if math.IsNaN(v) || math.IsInf(v, 0) || math.Abs(v) > 1e7 {
					return invalid("box coordinates must be finite pixel positions")
				}
			}
		}
	}
	return nil
}
