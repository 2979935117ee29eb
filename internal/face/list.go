package face

import (
	"context"
	"encoding/base64"
	"fmt"

	"github.com/visionserve/visionserve/internal/gallery"
)

// Listing pages: a request names how many entries it wants and where the
// previous page ended; an answer says where it ended when more follow.
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

// Page asks for one page of a listing: up to Size entries (0:
// DefaultPageSize) after those of the page whose NextPageToken is Token
// ("": from the first).
type Page struct {
	Size  int
	Token string
}

// GalleryPage is one page of a tenant's galleries, by name.
type GalleryPage struct {
	Galleries []gallery.Gallery `json:"galleries"`
	// NextPageToken asks for the next page; absent on the last.
	NextPageToken string `json:"next_page_token,omitempty"`
}

// SubjectPage is one page of a gallery's subjects, by name (bytewise).
type SubjectPage struct {
	Gallery       string                `json:"gallery"`
	Subjects      []gallery.SubjectInfo `json:"subjects"`
	NextPageToken string                `json:"next_page_token,omitempty"`
}

// ListGalleries lists a tenant's galleries.
func (s *Service) ListGalleries(_ context.Context, tenant string, page Page) (*GalleryPage, error) {
	g, err := s.gal()
	if err != nil {
		return nil, err
	}
	size, after, err := page.parse(gallery.ValidGalleryName)
	if err != nil {
		return nil, err
	}
	gs, more, err := g.Galleries(tenant, after, size)
	if err != nil {
		return nil, err
	}
	out := &GalleryPage{Galleries: gs}
	if out.Galleries == nil {
		out.Galleries = []gallery.Gallery{}
	}
	if more {
		out.NextPageToken = pageToken(gs[len(gs)-1].Name)
	}
	return out, nil
}

// ListSubjects lists a gallery's subjects and their numbers of faces.
func (s *Service) ListSubjects(ctx context.Context, ref gallery.Ref, page Page) (*SubjectPage, error) {
	g, err := s.gal()
	if err != nil {
		return nil, err
	}
	size, after, err := page.parse(gallery.ValidSubjectName)
	if err != nil {
		return nil, err
	}
	ss, more, err := g.Subjects(ctx, ref, after, size)
	if err != nil {
		return nil, err
	}
	out := &SubjectPage{Gallery: ref.Name, Subjects: ss}
	if out.Subjects == nil {
		out.Subjects = []gallery.SubjectInfo{}
	}
	if more {
		out.NextPageToken = pageToken(ss[len(ss)-1].Name)
	}
	return out, nil
}

// pageToken is the token of a page that ended at name: the name,
// base64url, so that clients treat it as opaque and the encoding may
// change.
func pageToken(name string) string { return base64.RawURLEncoding.EncodeToString([]byte(name)) }

// parse checks the page size and reads the token back into the name the
// previous page ended at, which valid must accept.
func (p Page) parse(valid func(string) error) (size int, after string, err error) {
	switch {
	case p.Size == 0:
		size = DefaultPageSize
	case p.Size < 1 || p.Size > MaxPageSize:
		return 0, "", fmt.Errorf("%w: page_size=%d; use 1 to %d", ErrBadOption, p.Size, MaxPageSize)
	default:
		size = p.Size
	}
	if p.Token == "" {
		return size, "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(p.Token)
	if err != nil || valid(string(b)) != nil {
		return 0, "", fmt.Errorf("%w: page_token=%q is not a token this server issued; pass next_page_token from the previous page", ErrBadOption, p.Token)
	}
	return size, string(b), nil
}
