package face

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/visionserve/visionserve/internal/gallery"
)

// Listings page by token: every entry once, in order, within the page
// size; sizes out of range and tokens this server did not issue are
// ErrBadOption (400), and a tenant lists only its own.
func TestListPages(t *testing.T) {
	ctx := context.Background()
	gm := newGalleries(t)
	svc, err := NewService(DefaultConfig(), &swapSource{}, gm, direct{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range 5 {
		name := fmt.Sprintf("g%d", i)
		want = append(want, name)
		if _, _, err := svc.CreateGallery(ctx, gallery.Ref{Tenant: "acme", Name: name}); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := svc.CreateGallery(ctx, gallery.Ref{Tenant: "globex", Name: "theirs"}); err != nil {
		t.Fatal(err)
	}
	var got []string
	page := Page{Size: 2}
	for range 4 {
		p, err := svc.ListGalleries(ctx, "acme", page)
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range p.Galleries {
			got = append(got, g.Name)
		}
		if page.Token = p.NextPageToken; page.Token == "" {
			break
		}
	}
	if !slices.Equal(got, want) || page.Token != "" {
		t.Fatalf("pages gave %v (next %q), want %v", got, page.Token, want)
	}
	if p, err := svc.ListGalleries(ctx, "nobody", Page{}); err != nil || p.Galleries == nil || len(p.Galleries) != 0 {
		t.Fatalf("a tenant without galleries: %+v %v", p, err)
	}

	g := gallery.Ref{Tenant: "acme", Name: "g1"}
	for _, s := range []string{"bob", "alice", "carol"} {
		if _, err := gm.AddFace(ctx, g, s, "m", []float32{1, 0}); err != nil {
			t.Fatal(err)
		}
	}
	p, err := svc.ListSubjects(ctx, g, Page{Size: 2})
	if err != nil || len(p.Subjects) != 2 || p.Subjects[0].Name != "alice" || p.NextPageToken == "" || p.Gallery != "g1" {
		t.Fatalf("first page: %+v %v", p, err)
	}
	if p, err = svc.ListSubjects(ctx, g, Page{Size: 2, Token: p.NextPageToken}); err != nil || len(p.Subjects) != 1 || p.Subjects[0].Name != "carol" || p.NextPageToken != "" {
		t.Fatalf("last page: %+v %v", p, err)
	}
	if _, err := svc.ListSubjects(ctx, gallery.Ref{Tenant: "globex", Name: "g1"}, Page{}); !errors.Is(err, gallery.ErrGalleryNotFound) {
		t.Fatalf("another tenant's gallery: %v", err)
	}

	for _, bad := range []Page{{Size: -1}, {Size: MaxPageSize + 1}, {Token: "not base64!"}, {Token: base64.RawURLEncoding.EncodeToString([]byte("a/b"))}} {
		if _, err := svc.ListSubjects(ctx, g, bad); !errors.Is(err, ErrBadOption) {
			t.Errorf("subjects %+v: %v", bad, err)
		}
		if _, err := svc.ListGalleries(ctx, "acme", bad); !errors.Is(err, ErrBadOption) {
			t.Errorf("galleries %+v: %v", bad, err)
		}
	}
}
