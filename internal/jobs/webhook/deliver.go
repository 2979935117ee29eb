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

	"github.com/visionserve/visionserve/internal/jobs/claim"
	"github.com/visionserve/visionserve/internal/jobs/store"
)

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
	// Concurrency is how many deliveries this process makes at once.
	Concurrency int
	// PerDestination bounds the deliveries in flight to one receiver
	// (scheme, host and port), counted by the outbox: across every
	// replica sharing it.
	PerDestination int
}

// Options wire a Deliverer.
type Options struct {
	Config Config
	// Outbox is where deliveries wait (the job store's outbox).
	Outbox store.Outbox
	// Worker names this process in the outbox's leases.
	Worker string
	// Poll is how often an idle sender looks for due deliveries queued by
	// other replicas (Poke wakes it for this process's own).
	Poll time.Duration
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
	loop   claim.Loop[*store.Delivery]
}

// NewDeliverer returns a deliverer; nothing is sent until Run.
func NewDeliverer(opts Options) *Deliverer {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	d := &Deliverer{opts: opts}
	d.loop = claim.Loop[*store.Delivery]{
		Claim: func(ctx context.Context) (*store.Delivery, bool, error) {
			dl, err := d.opts.Outbox.ClaimDelivery(ctx, d.opts.Worker, d.opts.Now(), d.lease(), max(d.opts.Config.PerDestination, 1))
			return dl, dl != nil, err
		},
		Do:     d.attempt,
		Failed: func(err error) { d.opts.Log.Error("reading the webhook outbox", "err", err) },
		Wait:   d.untilDue,
	}
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	if !opts.Config.AllowPrivateNetworks {
		// Checked on the address actually dialled, after DNS, so a name
		// that resolves to a private address is refused too.
		dialer.Control = func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return err
			}
			if err := CheckAddress(ap.Addr()); err != nil {
				return fmt.Errorf("%w (jobs.webhook.allow_private_networks is off)", err)
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
func (d *Deliverer) Poke() { d.loop.Poke() }

// lease is how long a claimed delivery is this process's: its attempt is
// bounded by the timeout, so a longer lease expires only when the
// process died (and another replica then makes the attempt again).
func (d *Deliverer) lease() time.Duration { return 2*d.opts.Config.Timeout + 10*time.Second }

// Run delivers webhooks until ctx ends: Concurrency senders, each
// claiming the next due delivery whose receiver has room, so a slow
// receiver holds at most PerDestination of them and the others serve
// everyone else.
func (d *Deliverer) Run(ctx context.Context) { d.loop.Run(ctx, d.opts.Config.Concurrency) }

// untilDue is how long an idle deliverer sleeps: until the next delivery
// is due, and at most Poll (for deliveries queued by other replicas, or
// left by one that died).
func (d *Deliverer) untilDue(ctx context.Context) time.Duration {
	if next, ok, err := d.opts.Outbox.NextDelivery(ctx); err == nil && ok {
		if until := next.Sub(d.opts.Now()); until > 0 && until < d.opts.Poll {
			return until
		}
	}
	return d.opts.Poll
}

// attempt makes one delivery attempt and records its outcome.
func (d *Deliverer) attempt(ctx context.Context, dl *store.Delivery) {
	log := d.opts.Log.With("delivery", dl.ID, "job", dl.JobID)
	err := d.post(ctx, dl)
	// The outcome is recorded even when shutting down, within a bound.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if ctx.Err() != nil {
		// Shutting down: give the delivery back, unchanged, for another
		// replica or the next start.
		if err := d.opts.Outbox.DeliveryRetry(rctx, dl); err != nil {
			log.Warn("giving a delivery back", "err", err)
		}
		return
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
		uerr = d.opts.Outbox.DeliveryDone(rctx, dl)
	} else {
		uerr = d.opts.Outbox.DeliveryRetry(rctx, dl)
	}
	if uerr != nil {
		log.Error("recording the webhook outcome", "err", uerr)
	}
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

func (d *Deliverer) post(ctx context.Context, dl *store.Delivery) error {
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
