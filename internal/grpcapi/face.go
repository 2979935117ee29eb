package grpcapi

import (
	"context"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/visionserve/visionserve/internal/auth"
	"github.com/visionserve/visionserve/internal/face"
	"github.com/visionserve/visionserve/internal/gallery"
	v1 "github.com/visionserve/visionserve/proto/visionserve/v1"
)

// faceService implements visionserve.v1.Faces on face.Service, as the
// HTTP face and gallery routes do.
type faceService struct {
	v1.UnimplementedFacesServer
	face *face.Service // nil: face recognition is off
}

// core returns the face core, or ErrDisabled (Unimplemented).
func (s *faceService) core() (*face.Service, error) {
	if s.face == nil {
		return nil, face.ErrDisabled
	}
	return s.face, nil
}

// galleryRef names a request's gallery in its caller's tenant (the
// credential's, or the default tenant): a call can only ever name
// galleries of its own tenant, as over HTTP.
func galleryRef(ctx context.Context, name string) gallery.Ref {
	return gallery.Ref{Tenant: tenantOf(ctx), Name: name}
}

func tenantOf(ctx context.Context) string {
	if p := auth.PrincipalFrom(ctx); p != nil {
		return p.Tenant
	}
	return gallery.DefaultTenant
}

// faceInput checks an image field and wraps it for the core.
func faceInput(fs *face.Service, data []byte, contentType string) (face.Input, error) {
	declared, err := checkImage(data, contentType, fs.Limits())
	if err != nil {
		return face.Input{}, err
	}
	return face.Input{Data: data, Declared: declared}, nil
}

func (s *faceService) Detect(ctx context.Context, req *v1.DetectRequest) (*v1.DetectResponse, error) {
	fs, err := s.core()
	if err != nil {
		return nil, err
	}
	in, err := faceInput(fs, req.GetImage(), req.GetContentType())
	if err != nil {
		return nil, err
	}
	res, err := fs.Detect(ctx, in, int(req.GetMaxFaces()))
	if err != nil {
		return nil, err
	}
	out := &v1.DetectResponse{Width: int32(res.Width), Height: int32(res.Height), Faces: make([]*v1.FaceBox, len(res.Faces)),
		Models: faceModels(ctx, res.Models)}
	for i, f := range res.Faces {
		fb := &v1.FaceBox{Box: box(f.Box), Score: f.Score, Landmarks: make([]*v1.Point, len(f.Landmarks))}
		for k, p := range f.Landmarks {
			fb.Landmarks[k] = &v1.Point{X: p[0], Y: p[1]}
		}
		out.Faces[i] = fb
	}
	return out, nil
}

func (s *faceService) Verify(ctx context.Context, req *v1.VerifyRequest) (*v1.VerifyResponse, error) {
	fs, err := s.core()
	if err != nil {
		return nil, err
	}
	a, err := faceInput(fs, req.GetA(), req.GetAContentType())
	if err != nil {
		return nil, err
	}
	b, err := faceInput(fs, req.GetB(), req.GetBContentType())
	if err != nil {
		return nil, err
	}
	res, err := fs.Verify(ctx, a, b, req.Threshold)
	if err != nil {
		return nil, err
	}
	return &v1.VerifyResponse{Similarity: res.Similarity, Match: res.Match, Threshold: res.Threshold, Models: faceModels(ctx, res.Models)}, nil
}

func (s *faceService) CreateGallery(ctx context.Context, req *v1.CreateGalleryRequest) (*v1.CreateGalleryResponse, error) {
	fs, err := s.core()
	if err != nil {
		return nil, err
	}
	g, created, err := fs.CreateGallery(ctx, galleryRef(ctx, req.GetGallery()))
	if err != nil {
		return nil, err
	}
	return &v1.CreateGalleryResponse{Name: g.Name, Created: timestamp(g.Created), Subjects: int32(g.Subjects),
		Faces: int32(g.Faces), Existed: !created}, nil
}

func (s *faceService) ListGalleries(ctx context.Context, req *v1.ListGalleriesRequest) (*v1.ListGalleriesResponse, error) {
	fs, err := s.core()
	if err != nil {
		return nil, err
	}
	page, err := fs.ListGalleries(ctx, tenantOf(ctx), face.Page{Size: int(req.GetPageSize()), Token: req.GetPageToken()})
	if err != nil {
		return nil, err
	}
	out := &v1.ListGalleriesResponse{Galleries: make([]*v1.Gallery, len(page.Galleries)), NextPageToken: page.NextPageToken}
	for i, g := range page.Galleries {
		out.Galleries[i] = &v1.Gallery{Name: g.Name, Created: timestamp(g.Created), Subjects: int32(g.Subjects), Faces: int32(g.Faces)}
	}
	return out, nil
}

func (s *faceService) DeleteGallery(ctx context.Context, req *v1.DeleteGalleryRequest) (*v1.DeleteGalleryResponse, error) {
	fs, err := s.core()
	if err != nil {
		return nil, err
	}
	n, err := fs.DeleteGallery(ctx, galleryRef(ctx, req.GetGallery()))
	if err != nil {
		return nil, err
	}
	return &v1.DeleteGalleryResponse{Faces: int32(n)}, nil
}

func (s *faceService) ListSubjects(ctx context.Context, req *v1.ListSubjectsRequest) (*v1.ListSubjectsResponse, error) {
	fs, err := s.core()
	if err != nil {
		return nil, err
	}
	page, err := fs.ListSubjects(ctx, galleryRef(ctx, req.GetGallery()), face.Page{Size: int(req.GetPageSize()), Token: req.GetPageToken()})
	if err != nil {
		return nil, err
	}
	out := &v1.ListSubjectsResponse{Gallery: page.Gallery, Subjects: make([]*v1.SubjectSummary, len(page.Subjects)), NextPageToken: page.NextPageToken}
	for i, sub := range page.Subjects {
		out.Subjects[i] = &v1.SubjectSummary{Subject: sub.Name, Faces: int32(sub.Faces)}
	}
	return out, nil
}

func (s *faceService) Enroll(ctx context.Context, req *v1.EnrollRequest) (*v1.EnrollResponse, error) {
	fs, err := s.core()
	if err != nil {
		return nil, err
	}
	in, err := faceInput(fs, req.GetImage(), req.GetContentType())
	if err != nil {
		return nil, err
	}
	res, err := fs.Enroll(ctx, galleryRef(ctx, req.GetGallery()), req.GetSubject(), in)
	if err != nil {
		return nil, err
	}
	return &v1.EnrollResponse{FaceId: res.FaceID, Box: box(res.Box), Score: res.Score, Models: faceModels(ctx, res.Models)}, nil
}

func (s *faceService) GetSubject(ctx context.Context, req *v1.GetSubjectRequest) (*v1.GetSubjectResponse, error) {
	fs, err := s.core()
	if err != nil {
		return nil, err
	}
	faces, err := fs.Subject(ctx, galleryRef(ctx, req.GetGallery()), req.GetSubject())
	if err != nil {
		return nil, err
	}
	out := &v1.GetSubjectResponse{Gallery: req.GetGallery(), Subject: req.GetSubject(), Faces: make([]*v1.EnrolledFace, len(faces))}
	for i, f := range faces {
		out.Faces[i] = &v1.EnrolledFace{FaceId: f.ID, Created: timestamp(f.Created)}
	}
	return out, nil
}

func (s *faceService) DeleteSubject(ctx context.Context, req *v1.DeleteSubjectRequest) (*v1.DeleteSubjectResponse, error) {
	fs, err := s.core()
	if err != nil {
		return nil, err
	}
	n, err := fs.DeleteSubject(ctx, galleryRef(ctx, req.GetGallery()), req.GetSubject())
	if err != nil {
		return nil, err
	}
	return &v1.DeleteSubjectResponse{Faces: int32(n)}, nil
}

func (s *faceService) Identify(ctx context.Context, req *v1.IdentifyRequest) (*v1.IdentifyResponse, error) {
	fs, err := s.core()
	if err != nil {
		return nil, err
	}
	opt := face.IdentifyOptions{TopK: int(req.GetTopK()), Threshold: req.Threshold, MaxFaces: int(req.GetMaxFaces())}
	in, err := faceInput(fs, req.GetImage(), req.GetContentType())
	if err != nil {
		return nil, err
	}
	res, err := fs.Identify(ctx, galleryRef(ctx, req.GetGallery()), in, opt)
	if err != nil {
		return nil, err
	}
	out := &v1.IdentifyResponse{Faces: make([]*v1.IdentifiedFace, len(res.Faces)), Models: faceModels(ctx, res.Models)}
	for i, f := range res.Faces {
		out.Faces[i] = &v1.IdentifiedFace{Box: box(f.Box), Score: f.Score, Matches: matches(f.Matches)}
	}
	return out, nil
}

// Response metadata keys that name the face model versions that answered:
// the HTTP headers of those names.
const (
	mdFaceDetector = "x-face-detector"
	mdFaceEmbedder = "x-face-embedder"
)

// faceModels sends the versions as response metadata, as HTTP sends its
// headers, and returns them for the message.
func faceModels(ctx context.Context, m face.UsedModels) *v1.FaceModels {
	md := metadata.Pairs(mdFaceDetector, m.Detector.Name+"/"+m.Detector.Version)
	out := &v1.FaceModels{Detector: &v1.FaceModelRef{Name: m.Detector.Name, Version: m.Detector.Version}}
	if e := m.Embedder; e != nil {
		md.Append(mdFaceEmbedder, e.Name+"/"+e.Version)
		out.Embedder = &v1.FaceEmbedderRef{Name: e.Name, Version: e.Version, Id: e.ID}
	}
	_ = grpc.SetHeader(ctx, md)
	return out
}

func box(b face.Box) *v1.Box { return &v1.Box{X: b.X, Y: b.Y, Width: b.Width, Height: b.Height} }

func matches(ms []gallery.Match) []*v1.Match {
	out := make([]*v1.Match, len(ms))
	for i, m := range ms {
		out[i] = &v1.Match{Subject: m.Subject, Similarity: m.Similarity}
	}
	return out
}

// timestamp formats t as encoding/json does, so both transports print
// the same text.
func timestamp(t time.Time) string { return t.Format(time.RFC3339Nano) }
