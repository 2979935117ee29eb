package jobs

import (
	"errors"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/visionserve/visionserve/internal/pace"
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

// MinRate returns body read at rate bytes per second or faster after
// grace, and never past until (pace.Body); a read that misses the rate
// fails with ErrUploadTooSlow. Call stop once the body is read: it puts
// the request's deadline back.
func MinRate(body io.Reader, rc *http.ResponseController, rate int64, grace time.Duration, until time.Time) (r io.Reader, stop func()) {
	b := pace.New(body, rc, rate, grace, until)
	return slowUpload{b}, b.Done
}

// slowUpload names the job setting a paced upload fell below.
type slowUpload struct{ *pace.Body }

func (s slowUpload) Read(p []byte) (int, error) {
	n, err := s.Body.Read(p)
	if e := (*pace.Error)(nil); errors.As(err, &e) {
		err = errorf(ErrUploadTooSlow, "the upload fell below %d bytes per second (jobs.min_upload_rate) after its first %v", e.Rate, e.Grace)
	}
	return n, err
}
