// Package tlsconf builds the TLS configuration of visionserve's listeners:
// TLS 1.3 only, HTTP/2 and HTTP/1.1 offered by ALPN, an optional client CA
// for mutual TLS, and certificates that are reloaded from disk without a
// restart.
//
// Reloading happens on the handshake path, cached: a handshake at most
// every CheckInterval re-reads the certificate, key and client-CA files,
// and only when their bytes changed are they parsed and swapped in. The
// new material is fully built (key pair parsed and matched, CA pool built)
// before it is published with an atomic pointer; a file caught half-written
// during a rotation fails to parse, the previous material keeps serving and
// the next check tries again. tlsconf never serves a connection without a
// certificate and never lowers the protocol floor below TLS 1.3.
package tlsconf
