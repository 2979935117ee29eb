package ratelimit_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/tap"

	"github.com/visionserve/visionserve/internal/ratelimit"
)

func principal(context.Context) (ratelimit.Key, bool) { return ratelimit.Key{Principal: "p"}, true }

// The tap refuses a call over the rate with the limiter's own error (the
// transport maps it, with its delay), before any message is read.
func TestTapHandleRate(t *testing.T) {
	l, _, f := newLimiter(t, ratelimit.Config{Default: ratelimit.Limit{Rate: 0.25, Burst: 1}}, 0)
	h := l.TapHandle(principal)
	info := &tap.Info{FullMethodName: "/pkg.S/M"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := h(ctx, info); err != nil {
		t.Fatal(err)
	}
	_, err := h(ctx, info)
	var le *ratelimit.LimitError
	if !errors.As(err, &le) || le.Reason != ratelimit.ReasonRate || le.RetryAfter != 4*time.Second {
		t.Fatalf("second call: %v, want a rate refusal with 4s", err)
	}
	if got := f.requests(ratelimit.OtherTenant, ratelimit.ReasonRate); got != 1 {
		t.Errorf("rate_limited count %v", got)
	}
	// Public methods (no key) are never limited.
	open := l.TapHandle(func(context.Context) (ratelimit.Key, bool) { return ratelimit.Key{}, false })
	if _, err := open(ctx, info); err != nil {
		t.Errorf("a call without a key: %v", err)
	}
}

// An admitted call holds its concurrency slot until the releasing
// interceptor returns, or, when it never reaches one (a message over its
// bound, a reset stream), until its context ends.
func TestTapHandleReleasesTheSlot(t *testing.T) {
	l, _, _ := newLimiter(t, ratelimit.Config{Default: ratelimit.Limit{Concurrency: 1}}, 0)
	h := l.TapHandle(principal)
	info := &tap.Info{FullMethodName: "/pkg.S/M"}
	acquire := func(ctx context.Context) (context.Context, error) { return h(ctx, info) }

	call, end := context.WithCancel(context.Background())
	defer end()
	callCtx, err := acquire(call)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := acquire(context.Background()); !errors.Is(err, ratelimit.ErrLimited) {
		t.Fatalf("a second call in flight: %v, want refused", err)
	}
	// The unary interceptor frees the slot before the call's status goes
	// out, so the next call is admitted at once.
	unary := l.UnaryServerInterceptor()
	if _, err := unary(callCtx, nil, &grpc.UnaryServerInfo{}, func(context.Context, any) (any, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	next, endNext := context.WithCancel(context.Background())
	if _, err := acquire(next); err != nil {
		t.Fatalf("after the interceptor returned: %v", err)
	}
	// This one never reaches an interceptor: its end frees the slot.
	endNext()
	deadline := time.Now().Add(10 * time.Second)
	for {
		third, endThird := context.WithCancel(context.Background())
		_, err := acquire(third)
		endThird()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a call whose context ended still holds its slot: %v", err)
		}
		time.Sleep(time.Millisecond)
	}
}
