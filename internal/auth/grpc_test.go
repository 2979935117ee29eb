package auth_test

import (
	"context"
	"net"
	"strings"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	gproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/visionserve/visionserve/internal/auth"
)

// The tap handle guards a real gRPC server (the standard health service
// stands in for the inference services), and refuses a call before its
// message is decoded.
func TestGRPCTapHandle(t *testing.T) {
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
	codec := &countingCodec{CodecV2: encoding.GetCodecV2(gproto.Name)}
	srv := grpc.NewServer(
		grpc.InTapHandle(a.TapHandle(scopes)),
		grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			seen = auth.PrincipalFrom(ctx)
			return h(ctx, req)
		}),
		grpc.ForceServerCodecV2(codec),
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
		{"no credential, a large message", func() error {
			_, err := client.Check(context.Background(), &healthpb.HealthCheckRequest{Service: strings.Repeat("x", 1<<20)})
			return err
		}, codes.Unauthenticated},
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
			before := codec.unmarshals.Load()
			if got := status.Code(tc.call()); got != tc.want {
				t.Fatalf("code %v, want %v", got, tc.want)
			}
			if n := codec.unmarshals.Load() - before; tc.want != codes.OK && n != 0 {
				t.Errorf("the refused call's message was decoded (%d times)", n)
			}
		})
	}
	if seen == nil || seen.ID != "key:ops" {
		t.Errorf("the handler saw principal %+v", seen)
	}
}

// The tap handle lets an authorised stream through with the principal in
// its context.
func TestGRPCStreamAllowed(t *testing.T) {
	key, hash, _ := auth.GenerateKey()
	a, _ := newAuth(t, auth.Config{APIKeys: []auth.APIKey{{Name: "app", Hash: hash, Scopes: []string{"infer"}}}}, nil)
	scopes := auth.MethodScopes{healthpb.Health_Watch_FullMethodName: auth.ScopeInfer}
	var seen *auth.Principal
	srv := grpc.NewServer(grpc.InTapHandle(a.TapHandle(scopes)),
		grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			seen = auth.PrincipalFrom(ss.Context())
			return h(srv, ss)
		}))
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
	if seen == nil || seen.ID != "key:app" {
		t.Errorf("the stream saw principal %+v", seen)
	}
}

// countingCodec counts the messages the server decodes.
type countingCodec struct {
	encoding.CodecV2
	unmarshals atomic.Int64
}

func (c *countingCodec) Unmarshal(data mem.BufferSlice, v any) error {
	c.unmarshals.Add(1)
	return c.CodecV2.Unmarshal(data, v)
}
