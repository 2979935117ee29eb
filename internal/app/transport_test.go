package app_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/visionserve/visionserve/internal/app/apptest"
	"github.com/visionserve/visionserve/internal/auth"
	"github.com/visionserve/visionserve/internal/config"
	"github.com/visionserve/visionserve/internal/grpcapi/grpctest"
	"github.com/visionserve/visionserve/internal/ratelimit"
	v1 "github.com/visionserve/visionserve/proto/visionserve/v1"
)

// withInferKey turns authentication on with one key holding infer, and
// returns that key.
func withInferKey(t *testing.T) (func(*config.Config), string) {
	t.Helper()
	key, hash, err := auth.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return func(c *config.Config) {
		c.Auth.Disabled = false
		c.Auth.APIKeys = append(c.Auth.APIKeys, auth.APIKey{Name: "app", Hash: hash, Scopes: []string{string(auth.ScopeInfer)}})
	}, key
}

// A gRPC call without a credential is refused when its headers arrive:
// its message is never received, inflated or parsed. Twenty calls whose
// 60 MiB message compresses to about 60 KB each used to cost the server
// 60 MiB or more apiece before authentication refused them; the bound
// here is what the whole process may allocate meanwhile.
func TestIntegrationGRPCRefusesBeforeReading(t *testing.T) {
	mutate, key := withInferKey(t)
	srv := apptest.Start(t, mutate)
	bomb := recognizeBomb(t, 60<<20)
	client := grpctest.NewClient()
	defer client.Close()
	ctx := context.Background()
	// A caller with a credential may still compress (within the limits).
	small, _ := proto.Marshal(&v1.RecognizeRequest{Image: []byte("not an image")})
	if code, m, err := client.Call(ctx, srv.GRPCAddr, v1.OCR_Recognize_FullMethodName, grpctest.GzipFrame(small), "authorization", "Bearer "+key); err != nil || code != codes.InvalidArgument {
		t.Fatalf("a compressed call with a key: %v %q %v; want InvalidArgument (the bytes are no image)", code, m, err)
	}

	codesSeen := make([]codes.Code, 20)
	alloc := allocatedBy(func() {
		var wg sync.WaitGroup
		for i := range codesSeen {
			wg.Go(func() {
				code, _, err := client.Call(ctx, srv.GRPCAddr, v1.OCR_Recognize_FullMethodName, bomb)
				if err != nil {
					t.Error(err)
				}
				codesSeen[i] = code
			})
		}
		wg.Wait()
	})
	for i, c := range codesSeen {
		if c != codes.Unauthenticated {
			t.Errorf("call %d: %v, want Unauthenticated", i, c)
		}
	}
	checkRefusedCalls(t, srv, alloc, map[string]int{"unauthenticated": 20})
}

// recognizeBomb is a Recognize call's frame whose image of size zero
// bytes compresses to about a thousandth of it.
func recognizeBomb(t *testing.T, size int) []byte {
	t.Helper()
	msg, err := proto.Marshal(&v1.RecognizeRequest{Image: make([]byte, size)})
	if err != nil {
		t.Fatal(err)
	}
	return grpctest.GzipFrame(msg)
}

// allocatedBy returns the bytes the whole process allocated while f ran.
func allocatedBy(f func()) uint64 {
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// checkRefusedCalls checks that calls refused before their message was
// read cost next to nothing (alloc: what the process allocated for them)
// and were counted by reason.
func checkRefusedCalls(t *testing.T, srv *apptest.Server, alloc uint64, refused map[string]int) {
	t.Helper()
	total := 0
	want := `
# HELP visionserve_grpc_refused_calls_total gRPC calls refused before their message was read, by reason (unauthenticated, permission_denied, rate_limited, other).
# TYPE visionserve_grpc_refused_calls_total counter
`
	for _, reason := range []string{"other", "permission_denied", "rate_limited", "unauthenticated"} {
		want += fmt.Sprintf("visionserve_grpc_refused_calls_total{reason=%q} %d\n", reason, refused[reason])
		total += refused[reason]
	}
	if alloc > 50<<20 {
		t.Errorf("%d refused calls allocated %d MiB in the process; they should cost next to nothing", total, alloc>>20)
	}
	if err := testutil.GatherAndCompare(srv.Registry, strings.NewReader(want), "visionserve_grpc_refused_calls_total"); err != nil {
		t.Error(err)
	}
}

// A gRPC caller over its rate limit is refused when its call's headers
// arrive, after authentication and before its message is read: the
// process wires the rate limiter as a tap after the credential check.
// Its compressed 30 MiB messages (about 30 KB each, within the method's
// bound) used to be inflated and parsed before the limiter refused them.
func TestIntegrationGRPCRateLimitedBeforeReading(t *testing.T) {
	withKey, key := withInferKey(t)
	srv := apptest.Start(t, func(c *config.Config) {
		withKey(c)
		c.RateLimits = ratelimit.Config{Default: ratelimit.Limit{Rate: 0.001, Burst: 1}}
	})
	bomb := recognizeBomb(t, 30<<20)
	client := grpctest.NewClient()
	defer client.Close()
	ctx := context.Background()
	auth := []string{"authorization", "Bearer " + key}
	// The one call the rate allows.
	small, _ := proto.Marshal(&v1.RecognizeRequest{Image: []byte("not an image")})
	if code, m, err := client.Call(ctx, srv.GRPCAddr, v1.OCR_Recognize_FullMethodName, grpctest.GzipFrame(small), auth...); err != nil || code != codes.InvalidArgument {
		t.Fatalf("the first call: %v %q %v; want InvalidArgument (the bytes are no image)", code, m, err)
	}

	alloc := allocatedBy(func() {
		for i := range 5 {
			code, m, err := client.Call(ctx, srv.GRPCAddr, v1.OCR_Recognize_FullMethodName, bomb, auth...)
			if err != nil || code != codes.ResourceExhausted || !strings.Contains(m, "rate limit") {
				t.Fatalf("call %d over the rate: %v %q %v, want ResourceExhausted (rate limit)", i, code, m, err)
			}
		}
	})
	checkRefusedCalls(t, srv, alloc, map[string]int{"rate_limited": 5})
}
