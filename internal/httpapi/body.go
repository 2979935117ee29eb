package httpapi

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/visionserve/visionserve/internal/auth"
	"github.com/visionserve/visionserve/internal/pace"
	"github.com/visionserve/visionserve/internal/sched"
)

// Request bodies of inference routes are read whole before the request is
// admitted (sched.Admit): a client that uploads slowly holds memory it was
// granted, never a worker or a queue place that other clients' requests
// need. The memory is bounded three ways: by the route's limit, by the
// server's memory for bodies (Config.Bodies, with a share per principal),
// and in time, by the request deadline and the minimum upload rate.

// errContentEncoding: a body in a content coding the server does not
// decode (RFC 9110, 15.5.16).
var errContentEncoding = errors.New("unsupported content encoding")

// firstHold is what an upload of unknown length holds before its first
// byte; the hold doubles as the body grows.
const firstHold = 64 << 10

// heldBody is a request body read whole before admission. The handler
// reads it as any body; bodyBytes hands over its bytes without a copy.
type heldBody struct {
	*bytes.Reader
	data []byte
}

func (*heldBody) Close() error { return nil }

// checkEncoding refuses a body in a content coding: the server reads
// images, tensors and documents as sent, and decoding a compressed body
// would make its size limit a limit on the compressed size. An identity
// coding is accepted.
func checkEncoding(r *http.Request) error {
	if r.ContentLength == 0 {
		return nil
	}
	for _, v := range r.Header.Values("Content-Encoding") {
		for _, coding := range strings.Split(v, ",") {
			if c := strings.TrimSpace(coding); c != "" && !strings.EqualFold(c, "identity") {
				return errContentEncoding
			}
		}
	}
	return nil
}

// memoryKey is whose share of the body memory a request takes: its
// principal, or without authentication the client's address (every such
// request is the one principal "anonymous", which would otherwise share
// one share).
func memoryKey(r *http.Request) string {
	p := auth.PrincipalFrom(r.Context())
	if p != nil && p.Method != auth.MethodAnonymous {
		return p.ID
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return auth.Anonymous.ID + "@" + host
}

// readBody reads r's body whole, within limit bytes, the body memory and
// the upload pace, and replaces r.Body with what it read. release gives
// the memory back once the handler is done with the bytes.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request, limit int64, deadline time.Time) (release func(), err error) {
	if r.ContentLength > limit {
		return nil, &http.MaxBytesError{Limit: limit}
	}
	var hold *sched.Hold
	grow := func(n int64) error { return nil }
	if s.cfg.Bodies != nil {
		hold = s.cfg.Bodies.Hold(memoryKey(r))
		grow = hold.Grow
	}
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	free := func() {
		if hold != nil {
			hold.Release()
		}
		if buf.Cap() <= maxPooled {
			bufPool.Put(buf)
		}
	}
	body := pace.New(http.MaxBytesReader(w, r.Body, limit), http.NewResponseController(w), s.cfg.MinUploadRate, s.cfg.UploadGrace, deadline)
	defer func() {
		if err != nil {
			free()
			return
		}
		body.Done()
	}()
	if r.ContentLength >= 0 {
		// The length is known and within the limit: hold it all at once.
		if err := grow(r.ContentLength); err != nil {
			return nil, err
		}
		buf.Grow(int(r.ContentLength) + bytes.MinRead)
		if _, err := buf.ReadFrom(body); err != nil {
			return nil, bodyError(r, err)
		}
	} else {
		// Unknown length: hold more as it arrives, twice as much each
		// time, up to the limit.
		held := int64(0)
		for {
			if int64(buf.Len()) >= held {
				more := min(max(held, firstHold), limit-held)
				if more <= 0 {
					more = 1 // past the limit: MaxBytesReader says so
				}
				if err := grow(more); err != nil {
					return nil, err
				}
				held += more
			}
			n, err := buf.ReadFrom(io.LimitReader(body, held-int64(buf.Len())))
			if err != nil {
				return nil, bodyError(r, err)
			}
			if n == 0 || int64(buf.Len()) < held {
				break // the end of the body
			}
		}
	}
	r.Body = &heldBody{Reader: bytes.NewReader(buf.Bytes()), data: buf.Bytes()}
	r.ContentLength = int64(buf.Len())
	return free, nil
}

// refuse answers err to a request whose body was not read (or not to its
// end). Over HTTP/1 the connection then closes: net/http would otherwise
// read up to 256 KiB of the rest of the body before sending the answer,
// as slowly as the client cares to send it.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, err error) {
	if r.ProtoMajor == 1 && r.ContentLength != 0 {
		w.Header().Set("Connection", "close")
	}
	s.writeError(w, r, err)
}

// bodyError names why reading a body failed.
func bodyError(r *http.Request, err error) error {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe), errors.Is(err, pace.ErrTooSlow):
		return err
	case errors.Is(err, os.ErrDeadlineExceeded):
		return errDeadline
	case r.Context().Err() != nil:
		return r.Context().Err()
	}
	return badRequestf("reading the request body: %v", err)
}

// bodyBytes returns the body of r within limit bytes: the bytes readBody
// read, or (for a route that was not admitted) the body read now.
// release returns the buffer once the caller is done with the bytes.
func bodyBytes(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, func(), error) {
	if r.ContentLength > limit {
		return nil, nil, &http.MaxBytesError{Limit: limit}
	}
	if b, ok := r.Body.(*heldBody); ok {
		return b.data, func() {}, nil
	}
	return readAll(r.Context(), http.MaxBytesReader(w, r.Body, limit), r.ContentLength)
}
