package ratelimit_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/visionserve/visionserve/internal/ratelimit"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

type fixture struct {
	reg     *prometheus.Registry
	metrics *ratelimit.Metrics
}

func (f fixture) requests(tenant, result string) float64 {
	return testutil.ToFloat64(f.metrics.Requests.WithLabelValues(tenant, result))
}

func newLimiter(t *testing.T, cfg ratelimit.Config, max int) (*ratelimit.Limiter, *clock, fixture) {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	f := fixture{reg: prometheus.NewRegistry()}
	f.metrics = ratelimit.NewMetrics(f.reg, cfg)
	c := &clock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	return ratelimit.New(cfg, ratelimit.Options{Metrics: f.metrics, Now: c.now, MaxPrincipals: max}), c, f
}

func limited(t *testing.T, err error, reason string) *ratelimit.LimitError {
	t.Helper()
	var le *ratelimit.LimitError
	if !errors.As(err, &le) || !errors.Is(err, ratelimit.ErrLimited) || le.Reason != reason {
		t.Fatalf("err %v, want %s", err, reason)
	}
	return le
}

func TestTokenBucket(t *testing.T) {
	l, c, reg := newLimiter(t, ratelimit.Config{
		Default: ratelimit.Limit{Rate: 0.5, Burst: 2},
		Tenants: map[string]ratelimit.Limit{"big": {Rate: 100, Burst: 100}},
	}, 0)
	alice := ratelimit.Key{Principal: "key:alice", Tenant: "small"}
	for i := 0; i < 2; i++ {
		release, err := l.Acquire(alice)
		if err != nil {
			t.Fatalf("request %d within the burst: %v", i, err)
		}
		release()
	}
	_, err := l.Acquire(alice)
	if le := limited(t, err, ratelimit.ReasonRate); le.RetryAfter != 2*time.Second {
		t.Fatalf("Retry-After %v, want 2s (one token at 0.5/s)", le.RetryAfter)
	}
	// Another principal has its own bucket; a configured tenant its own limit.
	if _, err := l.Acquire(ratelimit.Key{Principal: "key:bob", Tenant: "small"}); err != nil {
		t.Fatalf("bob: %v", err)
	}
	for i := 0; i < 50; i++ {
		if _, err := l.Acquire(ratelimit.Key{Principal: "key:carol", Tenant: "big"}); err != nil {
			t.Fatalf("carol %d: %v", i, err)
		}
	}
	// After the advertised wait, alice gets through.
	c.advance(2 * time.Second)
	if _, err := l.Acquire(alice); err != nil {
		t.Fatalf("after Retry-After: %v", err)
	}
	if v := reg.requests("other", ratelimit.ReasonRate); v != 1 {
		t.Errorf("rate_limited{tenant=other} = %v", v)
	}
}

func TestConcurrency(t *testing.T) {
	l, _, _ := newLimiter(t, ratelimit.Config{Default: ratelimit.Limit{Concurrency: 2}}, 0)
	k := ratelimit.Key{Principal: "jwt:x"}
	r1, err1 := l.Acquire(k)
	r2, err2 := l.Acquire(k)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	_, err := l.Acquire(k)
	limited(t, err, ratelimit.ReasonConcurrency)
	r1()
	r1() // a second release must not free another slot
	r3, err := l.Acquire(k)
	if err != nil {
		t.Fatalf("after a release: %v", err)
	}
	_, err = l.Acquire(k)
	limited(t, err, ratelimit.ReasonConcurrency)
	r2()
	r3()
}

// Labels: only configured tenants and "other", whatever principals claim.
func TestBoundedLabels(t *testing.T) {
	l, _, reg := newLimiter(t, ratelimit.Config{Default: ratelimit.Limit{Rate: 1000}, Tenants: map[string]ratelimit.Limit{"acme": {Rate: 1000}}}, 0)
	for i := 0; i < 100; i++ {
		release, err := l.Acquire(ratelimit.Key{Principal: fmt.Sprint("jwt:", i), Tenant: fmt.Sprint("tenant-", i)})
		if err != nil {
			t.Fatal(err)
		}
		release()
	}
	families, err := reg.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "tenant" && lp.GetValue() != "acme" && lp.GetValue() != "other" {
					t.Fatalf("unbounded label %s=%s", lp.GetName(), lp.GetValue())
				}
			}
		}
	}
	if v := reg.requests("other", "allowed"); v != 100 {
		t.Errorf("allowed{other} = %v", v)
	}
}

// The table of principals stays bounded however many principals appear.
func TestBoundedMemory(t *testing.T) {
	l, c, _ := newLimiter(t, ratelimit.Config{Default: ratelimit.Limit{Rate: 1, Burst: 5}}, 50)
	for i := 0; i < 5000; i++ {
		release, err := l.Acquire(ratelimit.Key{Principal: fmt.Sprint("jwt:", i)})
		if err != nil {
			t.Fatal(err)
		}
		release()
		if n := l.Len(); n > 51 {
			t.Fatalf("%d principals tracked after %d requests", n, i+1)
		}
	}
	// Refilled, idle principals are forgotten at the next sweep.
	c.advance(time.Hour)
	l.Acquire(ratelimit.Key{Principal: "late"})
	if n := l.Len(); n != 1 {
		t.Fatalf("%d principals tracked after everyone refilled", n)
	}
}

func TestUnlimited(t *testing.T) {
	l, _, _ := newLimiter(t, ratelimit.Config{}, 0)
	if l.Enabled() {
		t.Fatal("enabled without limits")
	}
	for i := 0; i < 1000; i++ {
		if _, err := l.Acquire(ratelimit.Key{Principal: "p"}); err != nil {
			t.Fatal(err)
		}
	}
	if l.Len() != 0 {
		t.Fatal("state kept without limits")
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  ratelimit.Config
		want string
	}{
		{ratelimit.Config{Default: ratelimit.Limit{Rate: -1}}, "default"},
		{ratelimit.Config{Tenants: map[string]ratelimit.Limit{"other": {}}}, "other"},
		{ratelimit.Config{Tenants: map[string]ratelimit.Limit{"x": {Concurrency: -2}}}, "tenants.x"},
	} {
		if err := tc.cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v", tc.cfg, err)
		}
	}
}

// A principal cannot get a fresh bucket by changing its token: requests
// with tokens of different tenant claims (so different limits) draw on
// one bucket, keyed by the principal. Each case sends 120 requests at
// once, then 120 more over 10 seconds, switching tenants request by
// request; every tenant with a rate holds a principal to 2/s with a burst
// of 2, so at most 2 + 10*2 of its requests may pass (a new bucket per
// switch let all 240 through).
func TestTenantSwitchKeepsTheBucket(t *testing.T) {
	cfg := ratelimit.Config{
		Default: ratelimit.Limit{Rate: 2, Burst: 2},
		Tenants: map[string]ratelimit.Limit{
			"a": {Rate: 2, Burst: 2, Concurrency: 50},
			"b": {Rate: 2, Burst: 2, Concurrency: 60},
			"c": {Rate: 2},        // burst 2 by default
			"d": {Concurrency: 5}, // no rate: its requests are not counted
		},
	}
	rated := func(tenant string) bool {
		if lim, ok := cfg.Tenants[tenant]; ok {
			return lim.Rate > 0
		}
		return cfg.Default.Rate > 0
	}
	for _, tc := range []struct {
		name    string
		tenants []string // used in turn, request after request
	}{
		{"one tenant", []string{"a"}},
		{"two tenants, different limits", []string{"a", "b"}},
		{"three tenants and the default", []string{"a", "b", "c", "unknown"}},
		{"a token without a tenant", []string{"a", ""}},
		{"a tenant without a rate in between", []string{"a", "d"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, c, _ := newLimiter(t, cfg, 0)
			allowed := 0
			send := func(i int) {
				tenant := tc.tenants[i%len(tc.tenants)]
				release, err := l.Acquire(ratelimit.Key{Principal: "jwt:mallory", Tenant: tenant})
				if err == nil {
					release()
					if rated(tenant) {
						allowed++
					}
				}
			}
			for i := 0; i < 120; i++ {
				send(i)
			}
			for i := 0; i < 120; i++ {
				c.advance(time.Second / 12)
				send(i)
			}
			if allowed > 22 || allowed < 20 {
				t.Errorf("%d rate-limited requests passed; 2/s with a burst of 2 lets 20 to 22 through in 10 s", allowed)
			}
		})
	}
}
