// Package grpctest sends hand-made gRPC calls, for tests that need what a
// well-behaved client library does not send or would spend much memory
// and time producing: a message compressed once and sent many times.
package grpctest

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"google.golang.org/grpc/codes"
)

// GzipFrame returns msg, a serialized protobuf message, gzip-compressed in
// a gRPC length-prefixed frame (send it with grpc-encoding: gzip).
func GzipFrame(msg []byte) []byte {
	var z bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&z, gzip.BestCompression)
	zw.Write(msg)
	zw.Close()
	frame := make([]byte, 5, 5+z.Len())
	frame[0] = 1 // compressed
	binary.BigEndian.PutUint32(frame[1:], uint32(z.Len()))
	return append(frame, z.Bytes()...)
}

// Client sends calls over one plain-text HTTP/2 connection.
type Client struct{ c *http.Client }

// NewClient returns a client for plain-text gRPC listeners.
func NewClient() *Client {
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	return &Client{c: &http.Client{Transport: tr}}
}

// Close closes the client's connections.
func (c *Client) Close() { c.c.CloseIdleConnections() }

// Call sends frame to method ("/pkg.Service/Method") at addr (host:port)
// with grpc-encoding gzip and the metadata pairs md, and returns the
// call's status.
func (c *Client) Call(ctx context.Context, addr, method string, frame []byte, md ...string) (codes.Code, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+method, bytes.NewReader(frame))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("Te", "trailers")
	req.Header.Set("Grpc-Encoding", "gzip")
	for i := 0; i+1 < len(md); i += 2 {
		req.Header.Add(md[i], md[i+1])
	}
	resp, err := c.c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return 0, "", err
	}
	// A call refused before its message is read ends with its headers
	// (trailers-only); others with trailers.
	st, msg := resp.Header.Get("Grpc-Status"), resp.Header.Get("Grpc-Message")
	if st == "" {
		st, msg = resp.Trailer.Get("Grpc-Status"), resp.Trailer.Get("Grpc-Message")
	}
	code, err := strconv.Atoi(st)
	if err != nil {
		return 0, "", fmt.Errorf("no grpc-status in the answer (HTTP %d)", resp.StatusCode)
	}
	return codes.Code(code), msg, nil
}
