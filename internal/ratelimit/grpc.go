package ratelimit

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/tap"
)

// TapHandle limits gRPC calls when their headers arrive, before their
// message is read (grpc.InTapHandle): a refused call's message, however
// large, is never received, inflated or parsed. It must run after the
// authentication tap, whose principal keyFor reads from the context;
// ok=false means the call is not limited (public methods). A refusal is
// the *LimitError itself: the transport turns it into its status
// (ResourceExhausted with the retry delay, grpcapi).
//
// An admitted call holds its slot until the releasing interceptor
// (UnaryServerInterceptor, StreamServerInterceptor) returns, or, for a
// call that never reaches them (a message over its bound, a stream reset
// before it ran), until the call's context ends. Like every tap handle
// it runs on the connection's reader and must not block: Acquire never
// waits.
func (l *Limiter) TapHandle(keyFor func(context.Context) (Key, bool)) tap.ServerInHandle {
	return func(ctx context.Context, _ *tap.Info) (context.Context, error) {
		k, ok := keyFor(ctx)
		if !ok {
			return ctx, nil
		}
		release, err := l.Acquire(k)
		if err != nil {
			return nil, err
		}
		// release is idempotent: whichever of the interceptor and the
		// end of the call comes first frees the slot.
		context.AfterFunc(ctx, release)
		return context.WithValue(ctx, slotKey{}, release), nil
	}
}

type slotKey struct{}

// releaseSlot frees the slot TapHandle took for the call of ctx, if any.
func releaseSlot(ctx context.Context) {
	if release, ok := ctx.Value(slotKey{}).(func()); ok {
		release()
	}
}

// UnaryServerInterceptor frees a unary call's slot when its handler
// returns, before its status is sent, so that a client that saw the
// answer finds the slot free.
func (l *Limiter) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		defer releaseSlot(ctx)
		return handler(ctx, req)
	}
}

// StreamServerInterceptor frees a stream's slot when its handler
// returns: a stream counts as one request in flight while it is open.
func (l *Limiter) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		defer releaseSlot(ss.Context())
		return handler(srv, ss)
	}
}
