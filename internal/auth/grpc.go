package auth

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"
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

// TapHandle authenticates and authorises every call from its metadata,
// before the call's message is read (grpc.InTapHandle): a caller without
// a credential, with a bad one or without the method's scope is refused
// with its headers, so its message, compressed or not, is never
// received, inflated or parsed. The call's context carries the principal.
//
// gRPC runs a tap handle on the connection's reader, so it must not
// block: verifying an API key or a JWT is CPU work of microseconds.
func (a *Authenticator) TapHandle(scopes MethodScopes) tap.ServerInHandle {
	return func(ctx context.Context, info *tap.Info) (context.Context, error) {
		scope, ok := scopes[info.FullMethodName]
		if !ok {
			return nil, status.Errorf(codes.PermissionDenied, "%s is not open to any caller", info.FullMethodName)
		}
		p, err := a.Check(FromHeader(info.Header.Get(mdAuthorization), info.Header.Get(mdAPIKey)), scope)
		if err != nil {
			return nil, GRPCStatus(err)
		}
		if p != nil {
			ctx = WithPrincipal(ctx, p)
		}
		return ctx, nil
	}
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
