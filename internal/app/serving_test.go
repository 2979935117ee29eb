package app_test

import (
	"context"
	"crypto/tls"
	"testing"

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
)

// gRPC gets the HTTP side's TLS, credentials and scopes: every inference
// RPC refuses missing, wrong and wrongly-scoped credentials; health and
// liveness stay open; over TLS 1.3.
func TestIntegrationGRPCAuthAndTLS(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "grpc CA")
	certFile, keyFile := ca.Server(t, "grpc").Write(t, dir, "server")
	inferKey, inferHash, _ := auth.GenerateKey()
	adminKey, adminHash, _ := auth.GenerateKey()
	srv := apptest.Start(t, func(c *config.Config) {
		c.TLS = config.TLS{CertFile: certFile, KeyFile: keyFile}
		c.Auth = auth.Config{APIKeys: []auth.APIKey{
			{Name: "app", Hash: inferHash, Scopes: []string{"infer"}},
			{Name: "ops", Hash: adminHash, Scopes: []string{"models:admin"}},
		}}
	})
	conn, err := grpc.NewClient("passthrough:///"+srv.GRPCAddr,
		grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := pb.NewGRPCInferenceServiceClient(conn)
	with := func(kv ...string) context.Context {
		return metadata.NewOutgoingContext(context.Background(), metadata.Pairs(kv...))
	}

	// Every method of the inference service is in the scope table.
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
	}
	for _, m := range pb.GRPCInferenceService_ServiceDesc.Methods {
		full := "/" + pb.GRPCInferenceService_ServiceDesc.ServiceName + "/" + m.MethodName
		if _, ok := scopes[full]; !ok {
			t.Errorf("%s has no scope", full)
		}
		if _, ok := calls[full]; !ok {
			t.Errorf("%s is not exercised by this test", full)
		}
	}
	for method, call := range calls {
		scope := scopes[method]
		t.Run(method, func(t *testing.T) {
			for _, tc := range []struct {
				name string
				ctx  context.Context
				want codes.Code // OK: anything but Unauthenticated/PermissionDenied
			}{
				{"missing", context.Background(), codes.Unauthenticated},
				{"wrong key", with("authorization", "Bearer vsk_wrongwrongwrongwrongwrongwrong"), codes.Unauthenticated},
				{"not bearer", with("authorization", "Basic dTpw"), codes.Unauthenticated},
				{"wrong scope", with("x-api-key", adminKey), codes.PermissionDenied},
				{"right scope", with("x-api-key", inferKey), codes.OK},
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
