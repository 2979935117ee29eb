package jobs_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"

	"github.com/visionserve/visionserve/internal/jobs"
	"github.com/visionserve/visionserve/internal/ocr"
)

// Issue 11 item 7: jobs of different tenants interleave. Tenant A queues
// eight jobs; tenant B's job, submitted after all of them, is the next to
// run once A's first (already running) is done, not the ninth.
func TestTenantsInterleave(t *testing.T) {
	e := newEnv(t, nil)
	e.ocr.gate = make(chan struct{})
	var mu sync.Mutex
	var order []string
	e.ocr.fail = func(in ocr.Input) error {
		mu.Lock()
		order = append(order, digest(in.Data))
		mu.Unlock()
		return nil
	}
	var ids []string
	for i := 0; i < 8; i++ {
		st, _, err := e.m.Submit(ctx, jobs.Owner{ID: "key:a", Tenant: "A"}, &jobs.Submission{Inputs: inputs(png(t, 20+i, 20))})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, st.ID)
	}
	b := png(t, 50, 50)
	st, _, err := e.m.Submit(ctx, jobs.Owner{ID: "key:b", Tenant: "B"}, &jobs.Submission{Inputs: inputs(b)})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 9; i++ {
		e.ocr.gate <- struct{}{}
	}
	e.wait("key:b", st.ID)
	for _, id := range ids {
		e.wait("key:a", id)
	}
	mu.Lock()
	defer mu.Unlock()
	if at := slices.Index(order, digest(b)); at != 1 {
		t.Fatalf("B's job ran %dth of %d, want 2nd (right after the A job already running)", at+1, len(order))
	}
}

// Issue 11 item 7: one slow webhook receiver delays no one else's
// webhooks. Its delivery is held open until the other receiver has got
// its own; with deliveries made one at a time that never happens, and the
// slow one is released only by the attempt timeout.
func TestSlowReceiverDelaysNoOneElse(t *testing.T) {
	t.Setenv("TEST_WEBHOOK_SECRET", secret)
	fastGot := make(chan struct{})
	var once sync.Once
	fast := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		once.Do(func() { close(fastGot) })
	}))
	defer fast.Close()
	inSlow := make(chan struct{}, 10)
	released := make(chan string, 10)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		inSlow <- struct{}{}
		select {
		case <-fastGot:
			released <- "by the other receiver's webhook"
		case <-r.Context().Done():
			released <- "by the attempt timeout"
		}
	}))
	defer slow.Close()
	e := newEnv(t, func(c *jobs.Config) {
		c.Webhook.SecretEnv = "TEST_WEBHOOK_SECRET"
		c.Webhook.Timeout = 20e9
	})
	e.realTime.Store(true)
	e.submit("key:a", &jobs.Submission{Inputs: inputs(png(t, 20, 20)), WebhookURL: slow.URL})
	<-inSlow
	e.submit("key:b", &jobs.Submission{Inputs: inputs(png(t, 21, 20)), WebhookURL: fast.URL})
	if how := <-released; how != "by the other receiver's webhook" {
		t.Fatalf("the slow receiver's delivery was released %s: the other webhook waited for it", how)
	}
}

// Issue 11 item 7: at most webhook.per_destination deliveries are in
// flight to one receiver; the senders left serve other receivers.
func TestWebhookPerDestinationLimit(t *testing.T) {
	t.Setenv("TEST_WEBHOOK_SECRET", secret)
	var mu sync.Mutex
	inFlight, most := 0, 0
	entered := make(chan struct{}, 10)
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		inFlight++
		most = max(most, inFlight)
		mu.Unlock()
		entered <- struct{}{}
		<-release
		mu.Lock()
		inFlight--
		mu.Unlock()
	}))
	defer slow.Close()
	fast := newReceiver(t)
	e := newEnv(t, func(c *jobs.Config) {
		c.Webhook.SecretEnv = "TEST_WEBHOOK_SECRET"
		c.Webhook.PerDestination = 2
		c.Webhook.Timeout = 60e9
	})
	e.realTime.Store(true)
	for i := 0; i < 3; i++ {
		e.wait("u", e.submit("u", &jobs.Submission{Inputs: inputs(png(t, 20+i, 20)), WebhookURL: slow.URL + "/hook"}).ID)
	}
	<-entered
	<-entered
	// The third slow delivery is due before this one; that this one is
	// sent shows a sender passed over the third.
	e.submit("u", &jobs.Submission{Inputs: inputs(png(t, 30, 20)), WebhookURL: fast.srv.URL})
	fast.waitFor(t, 1)
	mu.Lock()
	if most != 2 {
		t.Errorf("%d deliveries in flight to one receiver at once, want 2", most)
	}
	mu.Unlock()
	close(release)
	<-entered // the third, once there was room
	mu.Lock()
	defer mu.Unlock()
	if most != 2 {
		t.Errorf("%d deliveries in flight to one receiver at once, want 2", most)
	}
}
