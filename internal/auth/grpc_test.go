package auth_test

import (
	"context"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/visionserve/visionserve/internal/auth"
)

// The interceptors guard a real gRPC server (the standard health service
// stands in for the inference services).
func TestGRPCInterceptors(t *testing.T) {
	inferKey, inferHash, _ := auth.GenerateKey()
	adminKey, adminHash, _ := auth.GenerateKey()
	a, _ := newAuth(t, auth.Config{APIKeys: []auth.APIKey{
		{Name: "app", Hash: inferHash, Scopes: []string{"infer"}},
		{Name: "ops", Hash: adminHash, Scopes: []string{"models:admin"}},
	}}, nil)
	scopes := auth.MethodScopes{
		healthpb.Health_Check_FullMethodName: auth.ScopeInfer,
		healthpb.Health_List_FullMethodName:  auth.ScopeModelsAdmin,
		// Watch (a stream) is absent: closed.
	}
	var seen *auth.Principal
	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(a.UnaryServerInterceptor(scopes), func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			seen = auth.PrincipalFrom(ctx)
			return h(ctx, req)
		}),
		grpc.StreamInterceptor(a.StreamServerInterceptor(scopes)),
	)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	ln := bufconn.Listen(1 << 20)
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return ln.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)

	with := func(kv ...string) context.Context {
		return metadata.NewOutgoingContext(context.Background(), metadata.Pairs(kv...))
	}
	for _, tc := range []struct {
		name string
		call func() error
		want codes.Code
	}{
		{"no credential", func() error { _, err := client.Check(context.Background(), &healthpb.HealthCheckRequest{}); return err }, codes.Unauthenticated},
		{"wrong key", func() error {
			_, err := client.Check(with("authorization", "Bearer vsk_nope"), &healthpb.HealthCheckRequest{})
			return err
		}, codes.Unauthenticated},
		{"wrong scope", func() error {
			_, err := client.Check(with("x-api-key", adminKey), &healthpb.HealthCheckRequest{})
			return err
		}, codes.PermissionDenied},
		{"good key, bearer", func() error {
			_, err := client.Check(with("authorization", "Bearer "+inferKey), &healthpb.HealthCheckRequest{})
			return err
		}, codes.OK},
		{"admin method with infer key", func() error {
			_, err := client.List(with("x-api-key", inferKey), &healthpb.HealthListRequest{})
			return err
		}, codes.PermissionDenied},
		{"admin method with admin key", func() error {
			_, err := client.List(with("x-api-key", adminKey), &healthpb.HealthListRequest{})
			return err
		}, codes.OK},
		{"method not in the table", func() error {
			st, err := client.Watch(with("x-api-key", adminKey), &healthpb.HealthCheckRequest{})
			if err != nil {
				return err
			}
			_, err = st.Recv()
			return err
		}, codes.PermissionDenied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := status.Code(tc.call()); got != tc.want {
				t.Fatalf("code %v, want %v", got, tc.want)
			}
		})
	}
	if seen == nil || seen.ID != "key:ops" {
		t.Errorf("the handler saw principal %+v", seen)
	}
}

// The stream interceptor lets an authorised stream through with the
// principal in its context.
func TestGRPCStreamAllowed(t *testing.T) {
	key, hash, _ := auth.GenerateKey()
	a, _ := newAuth(t, auth.Config{APIKeys: []auth.APIKey{{Name: "app", Hash: hash, Scopes: []string{"infer"}}}}, nil)
	scopes := auth.MethodScopes{healthpb.Health_Watch_FullMethodName: auth.ScopeInfer}
	srv := grpc.NewServer(grpc.StreamInterceptor(a.StreamServerInterceptor(scopes)))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	ln := bufconn.Listen(1 << 20)
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	conn, _ := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return ln.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	defer conn.Close()
	ctx := metadata.NewOutgoingContext(context.Background(), metadata.Pairs("x-api-key", key))
	st, err := healthpb.NewHealthClient(conn).Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := st.Recv(); err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("%v %v", resp, err)
	}
}
