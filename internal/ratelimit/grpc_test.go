package ratelimit_test

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

	"github.com/visionserve/visionserve/internal/ratelimit"
)

func TestGRPCInterceptor(t *testing.T) {
	l, _, _ := newLimiter(t, ratelimit.Config{Default: ratelimit.Limit{Rate: 0.25, Burst: 1}}, 0)
	keyFor := func(context.Context) (ratelimit.Key, bool) { return ratelimit.Key{Principal: "p"}, true }
	srv := grpc.NewServer(grpc.UnaryInterceptor(l.UnaryServerInterceptor(keyFor)))
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
	c := healthpb.NewHealthClient(conn)
	if _, err := c.Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	var trailer metadata.MD
	_, err = c.Check(context.Background(), &healthpb.HealthCheckRequest{}, grpc.Trailer(&trailer))
	if status.Code(err) != codes.ResourceExhausted || len(trailer.Get("retry-after")) != 1 || trailer.Get("retry-after")[0] != "4" {
		t.Fatalf("second call: %v, trailer %v", err, trailer)
	}
}
