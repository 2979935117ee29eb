package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Delivery is a pending webhook, kept until it succeeds or is given up.
type Delivery struct {
	ID       string    `json:"id"`
	JobID    string    `json:"job_id"`
	URL      string    `json:"url"`
	Body     []byte    `json:"body"`
	Attempts int       `json:"attempts"`
	Next     time.Time `json:"next"`
	Created  time.Time `json:"created"`
}

// Outbox is where the deliveries wait.
type Outbox interface {
	// Pending returns every delivery not yet done.
	Pending(ctx context.Context) ([]*Delivery, error)
	// Done removes a delivery (delivered or given up).
	Done(ctx context.Context, d *Delivery) error
	// Retry records a failed attempt (d.Attempts, d.Next).
	Retry(ctx context.Context, d *Delivery) error
}

// Config tunes delivery.
type Config struct {
	// MaxAttempts before a delivery is given up (and logged).
	MaxAttempts int
	// InitialBackoff doubles per failed attempt, up to MaxBackoff, with
	// jitter.
	InitialBackoff, MaxBackoff time.Duration
	// Timeout bounds one attempt.
	Timeout time.Duration
	// AllowPrivateNetworks lets webhooks reach loopback, private and
	// link-local addresses.
	AllowPrivateNetworks bool
}

// Options wire a Deliverer.
type Options struct {
	Config Config
	Outbox Outbox
	// Key signs every attempt.
	Key []byte
	Log *slog.Logger
	// Outcomes counts attempts by outcome (delivered, retry, gave_up); nil: not counted.
	Outcomes *prometheus.CounterVec
	Now      func() time.Time
	// Version goes in the User-Agent.
	Version string
}

// Deliverer sends the outbox's webhooks.
type Deliverer struct {
	opts   Options
	client *http.Client
	wake   chan struct{}
}

// NewDeliverer returns a deliverer; nothing is sent until Run.
func NewDeliverer(opts Options) *Deliverer {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	d := &Deliverer{opts: opts, wake: make(chan struct{}, 1)}
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	if !opts.Config.AllowPrivateNetworks {
		// Checked on the address actually dialled, after DNS, so a name
		// that resolves to a private address is refused too.
		dialer.Control = func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return err
			}
			if ip := ap.Addr().Unmap(); !ip.IsGlobalUnicast() || ip.IsPrivate() || ip.IsLoopback() || ip.IsLinkLocalUnicast() {
				return fmt.Errorf("webhook address %s is not public (jobs.webhook.allow_private_networks is off)", ip)
			}
			return nil
		}
	}
	d.client = &http.Client{
		Timeout: opts.Config.Timeout,
		Transport: &http.Transport{
			DialContext:         dialer.DialContext,
			TLSHandshakeTimeout: 10 * time.Second,
			MaxIdleConnsPerHost: 2,
			ForceAttemptHTTP2:   true,
		},
		// A redirect could lead anywhere; the configured URL is final.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return d
}

// Poke says a delivery was queued.
func (d *Deliverer) Poke() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run delivers due webhooks until ctx ends, sleeping until the next one
// is due or a new one is queued. Deliveries go one at a time: a slow
// receiver delays others by at most the attempt timeout.
func (d *Deliverer) Run(ctx context.Context) {
	for {
		next := d.deliverDue(ctx)
		wait := time.Hour
		if !next.IsZero() {
			wait = max(next.Sub(d.opts.Now()), 0)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-d.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// deliverDue attempts every due delivery and returns when the next
// pending one is due (zero: none pending).
func (d *Deliverer) deliverDue(ctx context.Context) time.Time {
	pending, err := d.opts.Outbox.Pending(ctx)
	if err != nil {
		d.opts.Log.Error("reading the webhook outbox", "err", err)
		return time.Now().Add(time.Minute)
	}
	var next time.Time
	for _, dl := range pending {
		if ctx.Err() != nil {
			return time.Time{}
		}
		if now := d.opts.Now(); dl.Next.After(now) {
			if next.IsZero() || dl.Next.Before(next) {
				next = dl.Next
			}
			continue
		}
		if again := d.attempt(ctx, dl); !again.IsZero() && (next.IsZero() || again.Before(next)) {
			next = again
		}
	}
	return next
}

// attempt makes one delivery attempt and records its outcome; it returns
// the time of the next attempt, zero when the delivery is finished.
func (d *Deliverer) attempt(ctx context.Context, dl *Delivery) time.Time {
	log := d.opts.Log.With("delivery", dl.ID, "job", dl.JobID)
	err := d.post(ctx, dl)
	if ctx.Err() != nil {
		return time.Time{} // shutting down: the record stays for the next start
	}
	dl.Attempts++
	outcome := "delivered"
	var next time.Time
	switch {
	case err == nil:
		log.Info("webhook delivered", "attempts", dl.Attempts)
	case dl.Attempts >= d.opts.Config.MaxAttempts, errors.Is(err, errGone):
		outcome = "gave_up"
		log.Error("webhook given up", "attempts", dl.Attempts, "err", err)
	default:
		outcome = "retry"
		next = d.opts.Now().Add(d.backoff(dl.Attempts))
		dl.Next = next
		log.Warn("webhook failed; will retry", "attempts", dl.Attempts, "next", next, "err", err)
	}
	if d.opts.Outcomes != nil {
		d.opts.Outcomes.WithLabelValues(outcome).Inc()
	}
	var uerr error
	if next.IsZero() {
		uerr = d.opts.Outbox.Done(ctx, dl)
	} else {
		uerr = d.opts.Outbox.Retry(ctx, dl)
	}
	if uerr != nil {
		log.Error("recording the webhook outcome", "err", uerr)
	}
	return next
}

// backoff is InitialBackoff doubled per attempt, capped, with up to 20%
// jitter so receivers that come back are not hit all at once.
func (d *Deliverer) backoff(attempts int) time.Duration {
	c := d.opts.Config
	b := c.InitialBackoff
	for i := 1; i < attempts && b < c.MaxBackoff; i++ {
		b *= 2
	}
	b = min(b, c.MaxBackoff)
	return b + time.Duration(rand.Int64N(int64(b)/5+1))
}

func (d *Deliverer) post(ctx context.Context, dl *Delivery) error {
	ctx, cancel := context.WithTimeout(ctx, d.opts.Config.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, dl.URL, bytes.NewReader(dl.Body))
	if err != nil {
		return err
	}
	now := d.opts.Now()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "visionserve/"+d.opts.Version)
	req.Header.Set(HeaderID, dl.ID)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(HeaderSignature, Sign(d.opts.Key, dl.ID, now, dl.Body))
	resp, err := d.client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode == http.StatusGone {
		return errGone
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("receiver answered %s", resp.Status)
	}
	return nil
}

// errGone: the receiver answered 410 Gone, "stop sending" (Standard
// Webhooks): the delivery is given up without further attempts.
var errGone = errors.New("receiver answered 410 Gone")
