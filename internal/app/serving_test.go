package app_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/visionserve/visionserve/internal/app/apptest"
	"github.com/visionserve/visionserve/internal/auth"
	"github.com/visionserve/visionserve/internal/config"
	"github.com/visionserve/visionserve/internal/grpcapi"
	"github.com/visionserve/visionserve/internal/tlsconf/tlstest"
	pb "github.com/visionserve/visionserve/proto/inference"
	v1 "github.com/visionserve/visionserve/proto/visionserve/v1"
)

// gRPC gets the HTTP side's TLS, credentials and scopes: every method of
// every served service (the inference protocol, OCR, faces) refuses
// missing, wrong, expired and wrongly-scoped credentials; health and
// liveness stay open; over TLS 1.3.
func TestIntegrationGRPCAuthAndTLS(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "grpc CA")
	certFile, keyFile := ca.Server(t, "grpc").Write(t, dir, "server")
	inferKey, inferHash, _ := auth.GenerateKey()
	adminKey, adminHash, _ := auth.GenerateKey()
	galleriesKey, galleriesHash, _ := auth.GenerateKey()
	signer, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(&signer.PublicKey)
	pub := filepath.Join(dir, "es256.pem")
	if err := os.WriteFile(pub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	token := func(scope string, exp time.Duration) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"iss": "https://issuer.test", "aud": "visionserve",
			"sub": "robot", "scope": scope, "exp": time.Now().Add(exp).Unix()}).SignedString(signer)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	srv := apptest.Start(t, func(c *config.Config) {
		c.TLS = config.TLS{CertFile: certFile, KeyFile: keyFile}
		c.Auth = auth.Config{APIKeys: []auth.APIKey{
			{Name: "app", Hash: inferHash, Scopes: []string{"infer"}},
			{Name: "ops", Hash: adminHash, Scopes: []string{"models:admin"}},
			{Name: "curator", Hash: galleriesHash, Scopes: []string{"galleries:write"}},
		}, JWT: auth.JWT{Issuer: "https://issuer.test", Audience: "visionserve",
			Keys: []auth.JWTKey{{Algorithm: auth.AlgES256, PublicKeyFile: pub}}}}
	})
	conn, err := grpc.NewClient("passthrough:///"+srv.GRPCAddr,
		grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := pb.NewGRPCInferenceServiceClient(conn)
	ocrc := v1.NewOCRClient(conn)
	faces := v1.NewFacesClient(conn)
	with := func(kv ...string) context.Context {
		return metadata.NewOutgoingContext(context.Background(), metadata.Pairs(kv...))
	}

	// Every method of every service is in the scope table and called here.
	scopes := grpcapi.MethodScopes()
	calls := map[string]func(ctx context.Context) error{
		pb.GRPCInferenceService_ServerLive_FullMethodName: func(ctx context.Context) error {
			_, err := client.ServerLive(ctx, &pb.ServerLiveRequest{})
			return err
		},
		pb.GRPCInferenceService_ServerReady_FullMethodName: func(ctx context.Context) error {
			_, err := client.ServerReady(ctx, &pb.ServerReadyRequest{})
			return err
		},
		pb.GRPCInferenceService_ServerMetadata_FullMethodName: func(ctx context.Context) error {
			_, err := client.ServerMetadata(ctx, &pb.ServerMetadataRequest{})
			return err
		},
		pb.GRPCInferenceService_ModelReady_FullMethodName: func(ctx context.Context) error {
			_, err := client.ModelReady(ctx, &pb.ModelReadyRequest{Name: "ocr-eng"})
			return err
		},
		pb.GRPCInferenceService_ModelMetadata_FullMethodName: func(ctx context.Context) error {
			_, err := client.ModelMetadata(ctx, &pb.ModelMetadataRequest{Name: "ocr-eng"})
			return err
		},
		pb.GRPCInferenceService_ModelInfer_FullMethodName: func(ctx context.Context) error {
			_, err := client.ModelInfer(ctx, &pb.ModelInferRequest{ModelName: "ocr-eng"})
			return err
		},
		v1.OCR_Recognize_FullMethodName: func(ctx context.Context) error {
			_, err := ocrc.Recognize(ctx, &v1.RecognizeRequest{Image: []byte("x")})
			return err
		},
		v1.Faces_Detect_FullMethodName: func(ctx context.Context) error {
			_, err := faces.Detect(ctx, &v1.DetectRequest{Image: []byte("x")})
			return err
		},
		v1.Faces_Verify_FullMethodName: func(ctx context.Context) error {
			_, err := faces.Verify(ctx, &v1.VerifyRequest{A: []byte("x"), B: []byte("x")})
			return err
		},
		v1.Faces_CreateGallery_FullMethodName: func(ctx context.Context) error {
			_, err := faces.CreateGallery(ctx, &v1.CreateGalleryRequest{Gallery: "g"})
			return err
		},
		v1.Faces_ListGalleries_FullMethodName: func(ctx context.Context) error {
			_, err := faces.ListGalleries(ctx, &v1.ListGalleriesRequest{})
			return err
		},
		v1.Faces_DeleteGallery_FullMethodName: func(ctx context.Context) error {
			_, err := faces.DeleteGallery(ctx, &v1.DeleteGalleryRequest{Gallery: "g"})
			return err
		},
		v1.Faces_ListSubjects_FullMethodName: func(ctx context.Context) error {
			_, err := faces.ListSubjects(ctx, &v1.ListSubjectsRequest{Gallery: "g"})
			return err
		},
		v1.Faces_Enroll_FullMethodName: func(ctx context.Context) error {
			_, err := faces.Enroll(ctx, &v1.EnrollRequest{Gallery: "g", Subject: "s", Image: []byte("x")})
			return err
		},
		v1.Faces_GetSubject_FullMethodName: func(ctx context.Context) error {
			_, err := faces.GetSubject(ctx, &v1.GetSubjectRequest{Gallery: "g", Subject: "s"})
			return err
		},
		v1.Faces_DeleteSubject_FullMethodName: func(ctx context.Context) error {
			_, err := faces.DeleteSubject(ctx, &v1.DeleteSubjectRequest{Gallery: "g", Subject: "s"})
			return err
		},
		v1.Faces_Identify_FullMethodName: func(ctx context.Context) error {
			_, err := faces.Identify(ctx, &v1.IdentifyRequest{Gallery: "g", Image: []byte("x")})
			return err
		},
	}
	for _, desc := range []grpc.ServiceDesc{pb.GRPCInferenceService_ServiceDesc, v1.OCR_ServiceDesc, v1.Faces_ServiceDesc} {
		for _, m := range desc.Methods {
			full := "/" + desc.ServiceName + "/" + m.MethodName
			if _, ok := scopes[full]; !ok {
				t.Errorf("%s has no scope", full)
			}
			if _, ok := calls[full]; !ok {
				t.Errorf("%s is not exercised by this test", full)
			}
		}
	}
	// A key and a token holding exactly the scope, and a key without it.
	keys := map[auth.Scope][2]string{
		auth.ScopeInfer:          {inferKey, adminKey},
		auth.ScopeGalleriesWrite: {galleriesKey, inferKey},
	}
	expired := token("infer galleries:write models:admin", -time.Hour)
	for method, call := range calls {
		scope := scopes[method]
		right, wrong := keys[scope][0], keys[scope][1]
		t.Run(method, func(t *testing.T) {
			for _, tc := range []struct {
				name string
				ctx  context.Context
				want codes.Code // OK: anything but Unauthenticated/PermissionDenied
			}{
				{"missing", context.Background(), codes.Unauthenticated},
				{"wrong key", with("authorization", "Bearer vsk_wrongwrongwrongwrongwrongwrong"), codes.Unauthenticated},
				{"not bearer", with("authorization", "Basic dTpw"), codes.Unauthenticated},
				{"expired token", with("authorization", "Bearer "+expired), codes.Unauthenticated},
				{"wrong scope", with("x-api-key", wrong), codes.PermissionDenied},
				{"token without the scope", with("authorization", "Bearer "+token("something:else", time.Hour)), codes.PermissionDenied},
				{"right scope", with("x-api-key", right), codes.OK},
				{"token with the scope", with("authorization", "Bearer "+token(string(scope), time.Hour)), codes.OK},
			} {
				got := status.Code(call(tc.ctx))
				switch {
				case scope == auth.Public && (got == codes.Unauthenticated || got == codes.PermissionDenied):
					t.Errorf("%s: public method refused: %v", tc.name, got)
				case scope != auth.Public && tc.want == codes.OK && (got == codes.Unauthenticated || got == codes.PermissionDenied):
					t.Errorf("%s: refused: %v", tc.name, got)
				case scope != auth.Public && tc.want != codes.OK && got != tc.want:
					t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
				}
			}
		})
	}
	// The standard health service needs nothing.
	if resp, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health: %v %v", resp, err)
	}
	// Plain-text gRPC to the TLS listener fails.
	_, plain := grpcClient(t, srv.GRPCAddr)
	if _, err := plain.ServerLive(context.Background(), &pb.ServerLiveRequest{}); err == nil {
		t.Fatal("plain-text gRPC served on the TLS listener")
	}
}
