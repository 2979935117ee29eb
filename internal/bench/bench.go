// Package bench is visionserve's load generator. It replays a directory of
// images against a server either in a closed loop (N clients, each sending
// its next request when the last one is answered) or in an open loop (a
// fixed arrival rate, whatever the server does). Open-loop latencies are
// measured from each request's scheduled send time, so a stalled server
// shows up as latency instead of silently lowering the offered load
// (coordinated omission).
package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Options describe one run.
type Options struct {
	URL         string        // endpoint, e.g. http://127.0.0.1:8080/v1/ocr?mode=line
	Data        string        // directory of images (searched recursively)
	Concurrency int           // closed loop: clients; open loop: most requests outstanding
	Rate        float64       // requests per second; > 0 selects the open loop
	Duration    time.Duration // how long to send; 0 with Requests > 0 means until Requests are sent
	Requests    int           // stop after this many requests (0: no cap)
	Timeout     time.Duration // per-request client timeout
	Header      http.Header   // extra request headers
	Progress    io.Writer     // one status line per ProgressEvery; nil for none
	// ProgressEvery is the progress interval (default 1s).
	ProgressEvery time.Duration
	// Client overrides the HTTP client (tests).
	Client *http.Client
}

// Report is the outcome of a run. Its JSON form is stable for scripts.
type Report struct {
	Mode        string         `json:"mode"` // closed or open
	Concurrency int            `json:"concurrency"`
	TargetRate  float64        `json:"target_rate,omitempty"`
	Duration    float64        `json:"duration_s"`
	Requests    int            `json:"requests"`
	Succeeded   int            `json:"succeeded"`
	Throughput  float64        `json:"throughput_rps"` // successful responses per second
	Latency     Latency        `json:"latency_ms"`
	Status      map[string]int `json:"status"`           // count by HTTP status ("transport" for none)
	Errors      map[string]int `json:"errors,omitempty"` // transport errors by message
	Confidence  *Confidence    `json:"confidence,omitempty"`
}

// Latency percentiles of successful requests, in milliseconds.
type Latency struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

// Confidence summarises the confidences the server returned.
type Confidence struct {
	Count   int       `json:"count"`
	Mean    float64   `json:"mean"`
	P10     float64   `json:"p10"`
	P50     float64   `json:"p50"`
	Buckets []float64 `json:"buckets"` // upper bounds 0.1, 0.2, ..., 1.0
	Counts  []int     `json:"counts"`
}

type sample struct {
	latency    time.Duration
	status     int // 0: transport error
	errMsg     string
	confidence float64
	hasConf    bool
}

type payload struct {
	name        string
	data        []byte
	contentType string
}

// LoadDir reads every image file under dir (by extension).
func LoadDir(dir string) ([]payload, error) {
	var out []payload
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		ct := mime.TypeByExtension(strings.ToLower(filepath.Ext(p)))
		switch strings.ToLower(filepath.Ext(p)) {
		case ".pnm", ".pbm", ".pgm", ".ppm":
			ct = "image/x-portable-anymap"
		case ".tif", ".tiff":
			ct = "image/tiff"
		case ".webp":
			ct = "image/webp"
		}
		if !strings.HasPrefix(ct, "image/") {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		out = append(out, payload{name: p, data: data, contentType: ct})
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no images (png, jpeg, tiff, bmp, gif, webp, pnm) under %s", dir)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

// Run performs the load test.
func Run(ctx context.Context, o Options) (*Report, error) {
	if o.URL == "" {
		return nil, errors.New("--url is required")
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 1
	}
	if o.Duration <= 0 && o.Requests <= 0 {
		return nil, errors.New("give a --duration or a request count")
	}
	if o.Timeout <= 0 {
		o.Timeout = 60 * time.Second
	}
	if o.ProgressEvery <= 0 {
		o.ProgressEvery = time.Second
	}
	payloads, err := LoadDir(o.Data)
	if err != nil {
		return nil, err
	}
	client := o.Client
	if client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = o.Concurrency
		tr.MaxConnsPerHost = 0
		client = &http.Client{Transport: tr}
	}
	if o.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.Duration)
		defer cancel()
	}

	r := &runner{o: o, client: client, payloads: payloads}
	start := time.Now()
	stopProgress := r.progress(ctx, start)
	if o.Rate > 0 {
		r.open(ctx, start)
	} else {
		r.closed(ctx)
	}
	stopProgress()
	return r.report(time.Since(start)), nil
}

type runner struct {
	o        Options
	client   *http.Client
	payloads []payload

	mu      sync.Mutex
	samples []sample
	next    int // next payload and request number
}

// take hands out the next request number, or false when the cap is hit.
func (r *runner) take() (int, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.o.Requests > 0 && r.next >= r.o.Requests {
		return 0, false
	}
	n := r.next
	r.next++
	return n, true
}

func (r *runner) record(s sample) {
	r.mu.Lock()
	r.samples = append(r.samples, s)
	r.mu.Unlock()
}

func (r *runner) closed(ctx context.Context) {
	var wg sync.WaitGroup
	for c := 0; c < r.o.Concurrency; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				n, ok := r.take()
				if !ok {
					return
				}
				r.do(ctx, n, time.Now())
			}
		}()
	}
	wg.Wait()
}

func (r *runner) open(ctx context.Context, start time.Time) {
	interval := time.Duration(float64(time.Second) / r.o.Rate)
	outstanding := make(chan struct{}, r.o.Concurrency)
	var wg sync.WaitGroup
	defer wg.Wait()
	for i := 0; ; i++ {
		due := start.Add(time.Duration(i) * interval)
		if d := time.Until(due); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
				return
			}
		}
		if ctx.Err() != nil {
			return
		}
		n, ok := r.take()
		if !ok {
			return
		}
		select {
		case outstanding <- struct{}{}:
		case <-ctx.Done():
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-outstanding }()
			r.do(ctx, n, due)
		}()
	}
}

// do sends request n and records its latency from scheduled.
func (r *runner) do(ctx context.Context, n int, scheduled time.Time) {
	p := r.payloads[n%len(r.payloads)]
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, r.o.URL, bytes.NewReader(p.data))
	if err != nil {
		r.record(sample{errMsg: err.Error()})
		return
	}
	req.Header.Set("Content-Type", p.contentType)
	req.Header.Set("Accept", "application/json")
	for k, vs := range r.o.Header {
		req.Header[k] = vs
	}
	resp, err := r.client.Do(req)
	if err != nil {
		r.record(sample{latency: time.Since(scheduled), errMsg: shortErr(err)})
		return
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	resp.Body.Close()
	s := sample{latency: time.Since(scheduled), status: resp.StatusCode}
	if err != nil {
		s.status, s.errMsg = 0, shortErr(err)
	}
	if resp.StatusCode == http.StatusOK {
		var parsed struct {
			Confidence *float64 `json:"confidence"`
		}
		if json.Unmarshal(body, &parsed) == nil && parsed.Confidence != nil {
			s.confidence, s.hasConf = *parsed.Confidence, true
		}
	}
	r.record(s)
}

// shortErr drops the method and URL that *url.Error repeats on every line.
func shortErr(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

// progress prints a status line every ProgressEvery until stopped.
func (r *runner) progress(ctx context.Context, start time.Time) (stop func()) {
	if r.o.Progress == nil {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(r.o.ProgressEvery)
		defer t.Stop()
		last, lastAt := 0, start
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				r.mu.Lock()
				n := len(r.samples)
				ok, lats := 0, make([]float64, 0, n-last)
				for _, s := range r.samples[last:] {
					if s.status == http.StatusOK {
						ok++
						lats = append(lats, ms(s.latency))
					}
				}
				r.mu.Unlock()
				elapsed := now.Sub(start).Truncate(time.Second)
				total := ""
				if r.o.Duration > 0 {
					total = "/" + r.o.Duration.String()
				}
				fmt.Fprintf(r.o.Progress, "[%v%s] %d requests, %.1f ok/s, p50 %.0f ms, %d not ok\n",
					elapsed, total, n, float64(ok)/now.Sub(lastAt).Seconds(), percentile(lats, 50), n-last-ok)
				last, lastAt = n, now
			}
		}
	}()
	return func() { close(done); <-finished }
}

func (r *runner) report(elapsed time.Duration) *Report {
	rep := &Report{
		Mode: "closed", Concurrency: r.o.Concurrency, Duration: elapsed.Seconds(),
		Requests: len(r.samples), Status: map[string]int{},
	}
	if r.o.Rate > 0 {
		rep.Mode, rep.TargetRate = "open", r.o.Rate
	}
	var lats, confs []float64
	for _, s := range r.samples {
		if s.status == 0 {
			rep.Status["transport"]++
			if rep.Errors == nil {
				rep.Errors = map[string]int{}
			}
			rep.Errors[s.errMsg]++
			continue
		}
		rep.Status[strconv.Itoa(s.status)]++
		if s.status == http.StatusOK {
			rep.Succeeded++
			lats = append(lats, ms(s.latency))
			if s.hasConf {
				confs = append(confs, s.confidence)
			}
		}
	}
	rep.Throughput = float64(rep.Succeeded) / elapsed.Seconds()
	slices.Sort(lats)
	if len(lats) > 0 {
		var sum float64
		for _, l := range lats {
			sum += l
		}
		rep.Latency = Latency{P50: percentile(lats, 50), P90: percentile(lats, 90), P99: percentile(lats, 99), Max: lats[len(lats)-1], Mean: sum / float64(len(lats))}
	}
	if len(confs) > 0 {
		rep.Confidence = summarizeConfidence(confs)
	}
	return rep
}

func summarizeConfidence(confs []float64) *Confidence {
	slices.Sort(confs)
	c := &Confidence{Count: len(confs), P10: percentile(confs, 10), P50: percentile(confs, 50)}
	var sum float64
	for i := 1; i <= 10; i++ {
		c.Buckets = append(c.Buckets, float64(i)/10)
	}
	c.Counts = make([]int, 10)
	for _, v := range confs {
		sum += v
		c.Counts[min(int(v*10), 9)]++
	}
	c.Mean = sum / float64(len(confs))
	return c
}

// percentile of a sorted or unsorted slice (nearest rank); 0 when empty.
func percentile(v []float64, p float64) float64 {
	if len(v) == 0 {
		return 0
	}
	if !slices.IsSorted(v) {
		v = slices.Clone(v)
		slices.Sort(v)
	}
	k := int(math.Ceil(p/100*float64(len(v)))) - 1
	return v[min(max(k, 0), len(v)-1)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// WriteText prints a report for people.
func (rep *Report) WriteText(w io.Writer) {
	fmt.Fprintf(w, "mode %s, concurrency %d", rep.Mode, rep.Concurrency)
	if rep.TargetRate > 0 {
		fmt.Fprintf(w, ", target %.1f req/s", rep.TargetRate)
	}
	fmt.Fprintf(w, "\nrequests %d in %.1f s, %d ok, throughput %.2f ok/s\n", rep.Requests, rep.Duration, rep.Succeeded, rep.Throughput)
	l := rep.Latency
	fmt.Fprintf(w, "latency ms: p50 %.1f  p90 %.1f  p99 %.1f  max %.1f  mean %.1f\n", l.P50, l.P90, l.P99, l.Max, l.Mean)
	codes := make([]string, 0, len(rep.Status))
	for k := range rep.Status {
		codes = append(codes, k)
	}
	sort.Strings(codes)
	fmt.Fprint(w, "status:")
	for _, k := range codes {
		fmt.Fprintf(w, " %s=%d", k, rep.Status[k])
	}
	fmt.Fprintln(w)
	for msg, n := range rep.Errors {
		fmt.Fprintf(w, "  transport error x%d: %s\n", n, msg)
	}
	if c := rep.Confidence; c != nil {
		fmt.Fprintf(w, "confidence: n %d, mean %.3f, p10 %.3f, p50 %.3f\n", c.Count, c.Mean, c.P10, c.P50)
		for i, n := range c.Counts {
			if n == 0 {
				continue
			}
			bar := strings.Repeat("#", int(math.Ceil(40*float64(n)/float64(c.Count))))
			fmt.Fprintf(w, "  [%.1f,%.1f%s %5d %s\n", c.Buckets[i]-0.1, c.Buckets[i], map[bool]string{true: "]", false: ")"}[i == 9], n, bar)
		}
	}
}
