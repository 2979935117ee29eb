package jobs

import (
	"errors"
	"io"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// uploads bounds the submissions being read at once (each may hold
// jobs.max_bytes in memory): the server's slots, and a tenant's share of
// them, so one tenant's slow uploads leave slots to the others. Slots
// bound this process's memory, so they are counted per process.
type uploads struct {
	max, perTenant int
	gauge          prometheus.Gauge // nil: not measured

	mu    sync.Mutex
	total int
	held  map[string]int // share -> slots held
}

func newUploads(cfg Config, gauge prometheus.Gauge) *uploads {
	return &uploads{max: cfg.MaxConcurrentUploads, perTenant: min(cfg.Tenant.MaxConcurrentUploads, cfg.MaxConcurrentUploads),
		gauge: gauge, held: map[string]int{}}
}

func (u *uploads) observeLocked() {
	if u.gauge != nil {
		u.gauge.Set(float64(u.total))
	}
}

// acquire takes a slot for share; release gives it back.
func (u *uploads) acquire(share string) (release func(), err error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	switch {
	case u.held[share] >= u.perTenant:
		return nil, errorf(ErrTooManyUploads, "%d of your submissions are being read, your share (jobs.tenant.max_concurrent_uploads); retry after the delay in Retry-After", u.held[share])
	case u.total >= u.max:
		return nil, errorf(ErrTooManyUploads, "other job submissions are being read (jobs.max_concurrent_uploads); retry after the delay in Retry-After")
	}
	u.total++
	u.held[share]++
	u.observeLocked()
	var once sync.Once
	return func() {
		once.Do(func() {
			u.mu.Lock()
			defer u.mu.Unlock()
			u.total--
			if u.held[share]--; u.held[share] == 0 {
				delete(u.held, share)
			}
			u.observeLocked()
		})
	}, nil
}

// MinRate returns body read under a moving read deadline: by grace plus
// n/rate seconds after start the client must have sent n bytes (the
// minimum rate of Apache's mod_reqtimeout), never past until (the
// request's own deadline; zero: none). A read that misses the rate fails
// with ErrUploadTooSlow. Call stop once the body is read: it puts the
// request's deadline back (the server's own read of the idle connection
// must not hit the rate deadline, which would cancel the request).
// Without deadline support on the connection the body is returned as it
// is.
func MinRate(body io.Reader, rc *http.ResponseController, rate int64, grace time.Duration, until time.Time) (r io.Reader, stop func()) {
	if rate <= 0 || rc.SetReadDeadline(time.Now().Add(grace)) != nil {
		return body, func() {}
	}
	return &minRateReader{r: body, rc: rc, start: time.Now(), rate: rate, grace: grace, until: until}, func() { _ = rc.SetReadDeadline(until) }
}

type minRateReader struct {
	r     io.Reader
	rc    *http.ResponseController
	start time.Time
	n     int64
	rate  int64
	grace time.Duration
	until time.Time
}

func (m *minRateReader) Read(p []byte) (int, error) {
	deadline := m.start.Add(m.grace + time.Duration(float64(m.n)/float64(m.rate)*float64(time.Second)))
	byRate := true
	if !m.until.IsZero() && !m.until.After(deadline) {
		deadline, byRate = m.until, false
	}
	_ = m.rc.SetReadDeadline(deadline)
	n, err := m.r.Read(p)
	m.n += int64(n)
	if byRate && errors.Is(err, os.ErrDeadlineExceeded) {
		return n, errorf(ErrUploadTooSlow, "the upload fell below %d bytes per second (jobs.min_upload_rate) after its first %v", m.rate, m.grace)
	}
	return n, err
}
