package app_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/visionserve/visionserve/internal/app/apptest"
	"github.com/visionserve/visionserve/internal/auth"
	"github.com/visionserve/visionserve/internal/config"
	"github.com/visionserve/visionserve/internal/gallery"
	"github.com/visionserve/visionserve/internal/httpapi"
	v1 "github.com/visionserve/visionserve/proto/visionserve/v1"
)

// tenantKeys configures API keys of three principals with every gallery
// scope: two tenants and one without a tenant (the default tenant).
func tenantKeys(t *testing.T) (map[string]string, func(*config.Config)) {
	keys := map[string]string{}
	var entries []auth.APIKey
	for _, tenant := range []string{"acme", "globex", gallery.DefaultTenant} {
		key, hash, err := auth.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		keys[tenant] = key
		entries = append(entries, auth.APIKey{Name: "key-" + tenant, Hash: hash, Tenant: tenant,
			Scopes: []string{string(auth.ScopeInfer), string(auth.ScopeGalleriesWrite)}})
	}
	return keys, func(c *config.Config) {
		c.Auth.Disabled = false
		c.Auth.APIKeys = append(c.Auth.APIKeys, entries...)
		c.Face.Gallery.TenantQuota = gallery.Quota{Galleries: 2, Faces: 100}
	}
}

// label names a tenant in subtest names.
func label(tenant string) string {
	if tenant == gallery.DefaultTenant {
		return "no-tenant"
	}
	return tenant
}

// Item 6 of issue 11, must show: galleries belong to a tenant. Another
// tenant, and a principal without one, get 404 gallery-not-found on
// every gallery route of the HTTP API (the server's own route table, so
// a route added later is covered) and NotFound from every gallery method
// of the gRPC API (every Faces method whose request names a gallery),
// exactly as for a gallery that does not exist; what they do changes
// nothing of the owner's; listings show a tenant its own galleries only;
// quotas are per tenant; and a tenant can delete its gallery.
func TestIntegrationGalleriesBelongToTenants(t *testing.T) {
	keys, withKeys := tenantKeys(t)
	withFace := apptest.WithFace(t)
	srv := apptest.Start(t, func(c *config.Config) { withFace(c); withKeys(c) })
	obama := sharedFile(t, "data/face/face_recognition-examples/knn_examples/train/obama/obama.jpg")
	client := v1.NewFacesClient(grpcConn(t, srv.GRPCAddr))
	as := func(tenant string) context.Context {
		return metadata.AppendToOutgoingContext(context.Background(), "x-api-key", keys[tenant])
	}
	call := func(tenant, method, path string, body []byte) (int, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-API-Key", keys[tenant])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	want := func(tenant, method, path string, body []byte, code int) []byte {
		t.Helper()
		got, b := call(tenant, method, path, body)
		if got != code {
			t.Fatalf("%s %s as %q: %d, want %d: %s", method, path, tenant, got, code, b)
		}
		return b
	}

	// acme's gallery, with one subject.
	want("acme", "PUT", "/v1/galleries/staff", nil, http.StatusCreated)
	want("acme", "POST", "/v1/galleries/staff/subjects/obama/faces", obama, http.StatusCreated)
	acmeIntact := func(t *testing.T) {
		t.Helper()
		b := want("acme", "POST", "/v1/galleries/staff/identify", obama, http.StatusOK)
		if !strings.Contains(string(b), `"subject":"obama"`) {
			t.Fatalf("acme's identify: %s", b)
		}
		b = want("acme", "GET", "/v1/galleries/staff/subjects", nil, http.StatusOK)
		if string(b) != `{"gallery":"staff","subjects":[{"subject":"obama","faces":1}]}`+"\n" {
			t.Fatalf("acme's subjects: %s", b)
		}
	}
	acmeIntact(t)

	others := []string{"globex", gallery.DefaultTenant}
	// Deletes last, so that one that wrongly reached acme's gallery
	// cannot make the checks after it pass.
	deletesLast := func(a, b string) int {
		rank := func(s string) int {
			if strings.Contains(s, "Delete") || strings.HasPrefix(s, "DELETE") {
				return 1
			}
			return 0
		}
		return cmp.Compare(rank(a), rank(b))
	}
	t.Run("http", func(t *testing.T) {
		checked := 0
		routes := httpapi.New(httpapi.Config{}).Routes()
		slices.SortStableFunc(routes, func(a, b httpapi.Route) int { return deletesLast(a.Pattern(), b.Pattern()) })
		for _, rt := range routes {
			if !strings.HasPrefix(rt.Path, "/v1/galleries/{gallery}") || rt.Pattern() == "PUT /v1/galleries/{gallery}" {
				continue // PUT creates the caller's own gallery of that name: below
			}
			path := strings.NewReplacer("{gallery}", "staff", "{subject}", "obama").Replace(rt.Path)
			var body []byte
			if rt.Method == http.MethodPost {
				body = obama // what succeeds for acme
			}
			for _, other := range others {
				t.Run(rt.Pattern()+"/"+label(other), func(t *testing.T) {
					code, b := call(other, rt.Method, path, body)
					var p struct{ Type, Detail string }
					_ = json.Unmarshal(b, &p)
					if code != http.StatusNotFound || !strings.HasSuffix(p.Type, "/gallery-not-found") {
						t.Fatalf("%s as tenant %q: %d %s, want 404 gallery-not-found", rt.Pattern(), other, code, b)
					}
					acmeIntact(t)
				})
				checked++
			}
		}
		if checked < 2*6 {
			t.Fatalf("only %d checks: the route table lost gallery routes", checked)
		}
	})

	t.Run("grpc", func(t *testing.T) {
		calls := map[protoreflect.Name]func(ctx context.Context) error{
			"Enroll": func(ctx context.Context) error {
				_, err := client.Enroll(ctx, &v1.EnrollRequest{Gallery: "staff", Subject: "obama", Image: obama})
				return err
			},
			"GetSubject": func(ctx context.Context) error {
				_, err := client.GetSubject(ctx, &v1.GetSubjectRequest{Gallery: "staff", Subject: "obama"})
				return err
			},
			"DeleteSubject": func(ctx context.Context) error {
				_, err := client.DeleteSubject(ctx, &v1.DeleteSubjectRequest{Gallery: "staff", Subject: "obama"})
				return err
			},
			"Identify": func(ctx context.Context) error {
				_, err := client.Identify(ctx, &v1.IdentifyRequest{Gallery: "staff", Image: obama})
				return err
			},
			"ListSubjects": func(ctx context.Context) error {
				_, err := client.ListSubjects(ctx, &v1.ListSubjectsRequest{Gallery: "staff"})
				return err
			},
			"DeleteGallery": func(ctx context.Context) error {
				_, err := client.DeleteGallery(ctx, &v1.DeleteGalleryRequest{Gallery: "staff"})
				return err
			},
		}
		// Every method whose request names a gallery is in the table,
		// except CreateGallery (below).
		methods := v1.File_visionserve_v1_faces_proto.Services().ByName("Faces").Methods()
		for i := range methods.Len() {
			m := methods.Get(i)
			if _, ok := calls[m.Name()]; !ok && m.Input().Fields().ByName("gallery") != nil && m.Name() != "CreateGallery" {
				t.Errorf("Faces/%s names a gallery: add it to this table", m.Name())
			}
		}
		if len(calls) < 6 {
			t.Fatalf("only %d methods in the table", len(calls))
		}
		names := slices.Collect(maps.Keys(calls))
		slices.SortFunc(names, func(a, b protoreflect.Name) int { return deletesLast(string(a), string(b)) })
		for _, name := range names {
			for _, other := range others {
				t.Run(string(name)+"/"+label(other), func(t *testing.T) {
					if err := calls[name](as(other)); status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), "no gallery has that name") {
						t.Fatalf("%s as tenant %q: %v, want NotFound (no gallery has that name)", name, other, err)
					}
					acmeIntact(t)
				})
			}
		}
	})

	t.Run("listings", func(t *testing.T) {
		for _, other := range others {
			if b := want(other, "GET", "/v1/galleries", nil, http.StatusOK); string(b) != `{"galleries":[]}`+"\n" {
				t.Errorf("galleries of %q: %s", other, b)
			}
			if r, err := client.ListGalleries(as(other), &v1.ListGalleriesRequest{}); err != nil || len(r.GetGalleries()) != 0 {
				t.Errorf("gRPC galleries of %q: %v %v", other, r, err)
			}
		}
		var page struct {
			Galleries []gallery.Gallery
		}
		if err := json.Unmarshal(want("acme", "GET", "/v1/galleries", nil, http.StatusOK), &page); err != nil || len(page.Galleries) != 1 ||
			page.Galleries[0].Name != "staff" || page.Galleries[0].Faces != 1 {
			t.Errorf("acme's galleries: %+v %v", page, err)
		}
		if r, err := client.ListSubjects(as("acme"), &v1.ListSubjectsRequest{Gallery: "staff"}); err != nil || len(r.GetSubjects()) != 1 ||
			r.GetSubjects()[0].GetSubject() != "obama" || r.GetSubjects()[0].GetFaces() != 1 {
			t.Errorf("gRPC subjects: %v %v", r, err)
		}
	})

	t.Run("namespaces and quotas", func(t *testing.T) {
		// The same name in another tenant is that tenant's own, empty
		// gallery.
		for _, other := range others {
			var g gallery.Gallery
			if err := json.Unmarshal(want(other, "PUT", "/v1/galleries/staff", nil, http.StatusCreated), &g); err != nil || g.Faces != 0 {
				t.Fatalf("%q's staff: %+v %v", other, g, err)
			}
		}
		acmeIntact(t)
		// Quota 2 galleries per tenant: acme's third is refused, the
		// others still create theirs.
		want("acme", "PUT", "/v1/galleries/second", nil, http.StatusCreated)
		b := want("acme", "PUT", "/v1/galleries/third", nil, http.StatusConflict)
		if !strings.Contains(string(b), "limit-reached") || !strings.Contains(string(b), "per tenant") {
			t.Errorf("acme's third gallery: %s", b)
		}
		if _, err := client.CreateGallery(as("acme"), &v1.CreateGalleryRequest{Gallery: "third"}); status.Code(err) != codes.FailedPrecondition {
			t.Errorf("acme's third gallery over gRPC: %v", err)
		}
		want("globex", "PUT", "/v1/galleries/second", nil, http.StatusCreated)
	})

	t.Run("delete", func(t *testing.T) {
		want("acme", "DELETE", "/v1/galleries/staff", nil, http.StatusNoContent)
		want("acme", "GET", "/v1/galleries/staff/subjects", nil, http.StatusNotFound)
		want("acme", "DELETE", "/v1/galleries/staff", nil, http.StatusNotFound)
		var page struct{ Galleries []gallery.Gallery }
		_ = json.Unmarshal(want("acme", "GET", "/v1/galleries", nil, http.StatusOK), &page)
		if len(page.Galleries) != 1 || page.Galleries[0].Name != "second" {
			t.Errorf("after the delete: %+v", page)
		}
		// Quota given back; the other tenants' "staff" untouched.
		want("acme", "PUT", "/v1/galleries/third", nil, http.StatusCreated)
		if r, err := client.DeleteGallery(as("globex"), &v1.DeleteGalleryRequest{Gallery: "staff"}); err != nil || r.GetFaces() != 0 {
			t.Errorf("globex's delete over gRPC: %v %v", r, err)
		}
		var left []string
		for _, tenant := range []string{"acme", "globex", gallery.DefaultTenant} {
			r, err := client.ListGalleries(as(tenant), &v1.ListGalleriesRequest{})
			if err != nil {
				t.Fatal(err)
			}
			for _, g := range r.GetGalleries() {
				left = append(left, tenant+"/"+g.GetName())
			}
		}
		slices.Sort(left)
		if strings.Join(left, " ") != "/staff acme/second acme/third globex/second" {
			t.Errorf("galleries left: %v", left)
		}
	})
}
