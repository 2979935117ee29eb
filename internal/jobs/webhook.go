package jobs

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Webhook headers, as in the Standard Webhooks specification
// (https://www.standardwebhooks.com), so its libraries verify them:
//
//	Webhook-Id:        the delivery id, the same on every retry
//	Webhook-Timestamp: Unix seconds of this attempt
//	Webhook-Signature: "v1," + base64(HMAC-SHA256(key, id + "." + timestamp + "." + body))
const (
	HeaderWebhookID        = "Webhook-Id"
	HeaderWebhookTimestamp = "Webhook-Timestamp"
	HeaderWebhookSignature = "Webhook-Signature"
)

// secretPrefix marks a Standard Webhooks secret: the key is the base64
// that follows.
const secretPrefix = "whsec_"

// ParseSecret turns the configured secret into the HMAC key.
func ParseSecret(s string) ([]byte, error) {
	if b64, ok := strings.CutPrefix(s, secretPrefix); ok {
		key, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			return nil, fmt.Errorf("%s secret is not valid base64: %w", secretPrefix, err)
		}
		if len(key) < minSecret {
			return nil, fmt.Errorf("the key is %d bytes; at least %d are needed", len(key), minSecret)
		}
		return key, nil
	}
	if len(s) < 32 {
		return nil, fmt.Errorf("the secret is %d characters; use at least 32, or whsec_ and base64 of %d random bytes", len(s), minSecret)
	}
	return []byte(s), nil
}

// Sign returns the Webhook-Signature value for a delivery.
func Sign(key []byte, id string, ts time.Time, body []byte) string {
	m := hmac.New(sha256.New, key)
	fmt.Fprintf(m, "%s.%d.", id, ts.Unix())
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// ErrBadSignature: a webhook's signature or timestamp does not verify.
var ErrBadSignature = errors.New("webhook signature does not verify")

// Verify checks a received webhook as a receiver should: the timestamp is
// within tolerance of now (against replays) and one of the signatures in
// the header matches (several appear, space-separated, while a secret is
// rotated). Receivers de-duplicate on the Webhook-Id.
func Verify(key []byte, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	id, tsText, sigs := h.Get(HeaderWebhookID), h.Get(HeaderWebhookTimestamp), h.Get(HeaderWebhookSignature)
	if id == "" || tsText == "" || sigs == "" {
		return fmt.Errorf("%w: missing webhook headers", ErrBadSignature)
	}
	sec, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: bad timestamp", ErrBadSignature)
	}
	ts := time.Unix(sec, 0)
	if d := now.Sub(ts); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: timestamp %v is outside the tolerance", ErrBadSignature, ts)
	}
	want := Sign(key, id, ts, body)
	for _, s := range strings.Fields(sigs) {
		if hmac.Equal([]byte(s), []byte(want)) {
			return nil
		}
	}
	return ErrBadSignature
}

// Event is the body of a webhook: the Standard Webhooks envelope around
// the job's status.
type Event struct {
	Type      string    `json:"type"` // job.succeeded, job.failed, job.canceled
	Timestamp time.Time `json:"timestamp"`
	Data      Status    `json:"data"`
}

// deliverer sends the outbox's webhooks.
type deliverer struct {
	m      *Manager
	client *http.Client
	wake   chan struct{}
}

func newDeliverer(m *Manager) *deliverer {
	d := &deliverer{m: m, wake: make(chan struct{}, 1)}
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	if !m.cfg.Webhook.AllowPrivateNetworks {
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
		Timeout: m.cfg.Webhook.Timeout,
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

func (d *deliverer) poke() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// run delivers due webhooks until ctx ends, sleeping until the next one
// is due or a new one is queued. Deliveries go one at a time: a slow
// receiver delays others by at most the attempt timeout.
func (d *deliverer) run(ctx context.Context) {
	for {
		next := d.deliverDue(ctx)
		wait := time.Hour
		if !next.IsZero() {
			wait = max(next.Sub(d.m.now()), 0)
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
func (d *deliverer) deliverDue(ctx context.Context) time.Time {
	pending, err := d.m.store.deliveries()
	if err != nil {
		d.m.log.Error("reading the webhook outbox", "err", err)
		return time.Now().Add(time.Minute)
	}
	var next time.Time
	for _, dl := range pending {
		if ctx.Err() != nil {
			return time.Time{}
		}
		if now := d.m.now(); dl.Next.After(now) {
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
func (d *deliverer) attempt(ctx context.Context, dl *delivery) time.Time {
	log := d.m.log.With("delivery", dl.ID, "job", dl.JobID)
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
	case dl.Attempts >= d.m.cfg.Webhook.MaxAttempts, errors.Is(err, errGone):
		outcome = "gave_up"
		log.Error("webhook given up", "attempts", dl.Attempts, "err", err)
	default:
		outcome = "retry"
		next = d.m.now().Add(d.backoff(dl.Attempts))
		dl.Next = next
		log.Warn("webhook failed; will retry", "attempts", dl.Attempts, "next", next, "err", err)
	}
	if d.m.metrics != nil {
		d.m.metrics.Webhooks.WithLabelValues(outcome).Inc()
	}
	uerr := d.m.store.db.Update(func(tx *bolt.Tx) error {
		if next.IsZero() {
			return tx.Bucket(bucketOutbox).Delete([]byte(dl.ID))
		}
		return putDelivery(tx, dl)
	})
	if uerr != nil {
		log.Error("recording the webhook outcome", "err", uerr)
	}
	return next
}

// backoff is InitialBackoff doubled per attempt, capped, with up to 20%
// jitter so receivers that come back are not hit all at once.
func (d *deliverer) backoff(attempts int) time.Duration {
	b := d.m.cfg.Webhook.InitialBackoff
	for i := 1; i < attempts && b < d.m.cfg.Webhook.MaxBackoff; i++ {
		b *= 2
	}
	b = min(b, d.m.cfg.Webhook.MaxBackoff)
	return b + time.Duration(rand.Int64N(int64(b)/5+1))
}

func (d *deliverer) post(ctx context.Context, dl *delivery) error {
	ctx, cancel := context.WithTimeout(ctx, d.m.cfg.Webhook.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, dl.URL, bytes.NewReader(dl.Body))
	if err != nil {
		return err
	}
	now := d.m.now()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "visionserve/"+d.m.version)
	req.Header.Set(HeaderWebhookID, dl.ID)
	req.Header.Set(HeaderWebhookTimestamp, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(HeaderWebhookSignature, Sign(d.m.secret, dl.ID, now, dl.Body))
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
