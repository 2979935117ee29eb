// Package auth decides who is calling (authentication) and whether they may
// do what they ask (authorisation), for every transport: HTTP through
// Authenticator.Check, gRPC through the interceptors in grpc.go.
//
// Credentials are API keys, stored in the configuration only as SHA-256
// hashes, and JWTs signed with HS256, RS256 or ES256 by keys read from
// files or a JWKS file. A principal carries scopes (infer, models:admin,
// galleries:write); each route or RPC names the one scope it needs in a
// table owned by its transport.
//
// auth never accepts an unsigned token, never lets a token choose which
// kind of key verifies it (each key is bound to one algorithm), and never
// grants models:admin without a verified credential, even when
// authentication is switched off for local use.
package auth
