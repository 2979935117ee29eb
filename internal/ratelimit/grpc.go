package ratelimit

import (
	"context"
	"strconv"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// UnaryServerInterceptor limits unary RPCs. keyFor names the caller from
// the context the auth interceptor prepared (it runs first); ok=false
// means the RPC is not limited (public methods). A refusal is
// ResourceExhausted with a "retry-after" trailer in seconds.
func (l *Limiter) UnaryServerInterceptor(keyFor func(context.Context) (Key, bool)) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		k, ok := keyFor(ctx)
		if !ok {
			return handler(ctx, req)
		}
		release, err := l.Acquire(k)
		if err != nil {
			return nil, grpcError(ctx, err)
		}
		defer release()
		return handler(ctx, req)
	}
}

// StreamServerInterceptor limits streams: a stream counts as one request
// in flight for as long as it is open.
func (l *Limiter) StreamServerInterceptor(keyFor func(context.Context) (Key, bool)) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		k, ok := keyFor(ss.Context())
		if !ok {
			return handler(srv, ss)
		}
		release, err := l.Acquire(k)
		if err != nil {
			return grpcError(ss.Context(), err)
		}
		defer release()
		return handler(srv, ss)
	}
}

func grpcError(ctx context.Context, err error) error {
	if le, ok := err.(*LimitError); ok {
		_ = grpc.SetTrailer(ctx, metadata.Pairs("retry-after", strconv.Itoa(int(le.RetryAfter.Seconds()))))
	}
	return status.Error(codes.ResourceExhausted, err.Error())
}
