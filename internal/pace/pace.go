// Package pace holds a request body to a minimum upload rate, as Apache's
// mod_reqtimeout does: after a grace period the client must keep sending
// at least a given number of bytes per second, or its read fails. A
// client that stalls or trickles a body then costs a connection and a
// slot for seconds, not for the request's whole deadline.
//
// The rate is enforced by the connection's read deadline, moved forward
// as bytes arrive (http.ResponseController.SetReadDeadline), so a stalled
// read ends at once when the pace is missed instead of being noticed only
// when the next bytes come.
package pace

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

// ErrTooSlow is the error a Body's read fails with when the client fell
// below the rate. It wraps os.ErrDeadlineExceeded; the error itself is an
// *Error naming the rate.
var ErrTooSlow = fmt.Errorf("request body too slow: %w", os.ErrDeadlineExceeded)

// Error says which rate a body fell below.
type Error struct {
	Rate  int64         // bytes per second
	Grace time.Duration // the time allowed before the rate counts
}

func (e *Error) Error() string {
	return fmt.Sprintf("the body fell below %d bytes per second after its first %v", e.Rate, e.Grace)
}

// Unwrap makes errors.Is(err, ErrTooSlow) (and os.ErrDeadlineExceeded)
// true.
func (e *Error) Unwrap() error { return ErrTooSlow }

// Body reads a request body under a moving read deadline: by grace plus
// n/rate seconds after it starts, n bytes must have arrived, and never
// past until (the request's own deadline; zero: none). A read that misses
// the pace fails with an *Error; one that misses until fails with the
// connection's os.ErrDeadlineExceeded.
type Body struct {
	r     io.Reader
	rc    *http.ResponseController
	rate  int64
	grace time.Duration
	until time.Time
	start time.Time
	n     int64
	paced bool // the deadline set last is the pace's, not until
	off   bool // the connection has no read deadline
}

// New returns body read at rate bytes per second or faster (rate <= 0:
// only until counts). Call Done once the body is read.
func New(body io.Reader, rc *http.ResponseController, rate int64, grace time.Duration, until time.Time) *Body {
	b := &Body{r: body, rc: rc, rate: rate, grace: grace, until: until, start: time.Now()}
	b.extend()
	return b
}

// Read reads from the body, then moves the deadline for the bytes read so
// far.
func (b *Body) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.n += int64(n)
	if n > 0 {
		b.extend()
	}
	if err != nil && b.paced && errors.Is(err, os.ErrDeadlineExceeded) {
		err = &Error{Rate: b.rate, Grace: b.grace}
	}
	return n, err
}

// Done puts the request's own deadline back once the body is in:
// net/http's background read of a finished body ends the request's
// context when the connection's deadline passes, and that must not be the
// pace's.
func (b *Body) Done() {
	if !b.off {
		_ = b.rc.SetReadDeadline(b.until)
	}
}

func (b *Body) extend() {
	if b.off {
		return
	}
	d := b.until
	if b.rate > 0 {
		pace := b.start.Add(b.grace + time.Duration(float64(b.n)/float64(b.rate)*float64(time.Second)))
		if d.IsZero() || pace.Before(d) {
			d = pace
		}
	}
	b.paced = b.rate > 0 && (b.until.IsZero() || d.Before(b.until))
	if err := b.rc.SetReadDeadline(d); err != nil {
		// http.ErrNotSupported: a connection without deadlines (a test
		// recorder, some wrappers) is read as it is.
		b.off = true
	}
}
