package auth

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// MethodScopes maps a full gRPC method name ("/pkg.Service/Method") to the
// scope it needs. A method missing from the table is refused: a new RPC
// is closed until someone decides who may call it.
type MethodScopes map[string]Scope

// Metadata keys (lower case, as gRPC carries them).
const (
	mdAuthorization = "authorization"
	mdAPIKey        = "x-api-key"
)

// UnaryServerInterceptor authenticates and authorises unary RPCs and puts
// the principal in the handler's context.
func (a *Authenticator) UnaryServerInterceptor(scopes MethodScopes) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, err := a.checkRPC(ctx, info.FullMethod, scopes)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamServerInterceptor is UnaryServerInterceptor for streams.
func (a *Authenticator) StreamServerInterceptor(scopes MethodScopes) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, err := a.checkRPC(ss.Context(), info.FullMethod, scopes)
		if err != nil {
			return err
		}
		return handler(srv, &principalStream{ServerStream: ss, ctx: ctx})
	}
}

func (a *Authenticator) checkRPC(ctx context.Context, method string, scopes MethodScopes) (context.Context, error) {
	scope, ok := scopes[method]
	if !ok {
		return nil, status.Errorf(codes.PermissionDenied, "%s is not open to any caller", method)
	}
	md, _ := metadata.FromIncomingContext(ctx)
	p, err := a.Check(FromHeader(md.Get(mdAuthorization), md.Get(mdAPIKey)), scope)
	if err != nil {
		return nil, GRPCStatus(err)
	}
	if p != nil {
		ctx = WithPrincipal(ctx, p)
	}
	return ctx, nil
}

// GRPCStatus maps an auth error to its gRPC status.
func GRPCStatus(err error) error {
	e, ok := err.(*Error)
	if !ok {
		return status.Error(codes.Internal, "authentication failed")
	}
	code := codes.Unauthenticated
	if e.Kind == ErrForbidden {
		code = codes.PermissionDenied
	}
	return status.Error(code, e.Error())
}

type principalStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *principalStream) Context() context.Context { return s.ctx }
