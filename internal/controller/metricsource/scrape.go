package metricsource

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/visionserve/visionserve/internal/controller/autoscale"
)

// Target is one pod to scrape: its name and base URL (http://ip:port).
type Target struct {
	Pod     string
	BaseURL string
}

// Scraper reads pods' /metrics over HTTP.
type Scraper struct {
	// Client makes the requests; its Timeout bounds each scrape. The zero
	// Scraper uses a client with a 5 s timeout.
	Client *http.Client
	// Now stamps samples (time.Now when nil); tests inject a clock.
	Now func() time.Time
	// Parallel bounds concurrent scrapes (default 16).
	Parallel int
}

var defaultClient = &http.Client{Timeout: 5 * time.Second}

func (s *Scraper) client() *http.Client {
	if s.Client != nil {
		return s.Client
	}
	return defaultClient
}

// Scrape reads one pod.
func (s *Scraper) Scrape(ctx context.Context, t Target) (autoscale.Sample, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.BaseURL+"/metrics", nil)
	if err != nil {
		return autoscale.Sample{}, err
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := s.client().Do(req)
	if err != nil {
		return autoscale.Sample{}, fmt.Errorf("scraping %s: %w", t.Pod, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return autoscale.Sample{}, fmt.Errorf("scraping %s: %s", t.Pod, resp.Status)
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	at := now()
	sample, err := Parse(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return autoscale.Sample{}, fmt.Errorf("scraping %s: %w", t.Pod, err)
	}
	sample.Pod, sample.Time = t.Pod, at
	return sample, nil
}

// ScrapeAll reads every target concurrently. It returns the samples it got
// and the failures joined; a partial result is normal (the autoscaler
// accounts for pods that did not report).
func (s *Scraper) ScrapeAll(ctx context.Context, targets []Target) ([]autoscale.Sample, error) {
	parallel := s.Parallel
	if parallel <= 0 {
		parallel = 16
	}
	var (
		mu      sync.Mutex
		samples []autoscale.Sample
		errs    []error
		wg      sync.WaitGroup
		sem     = make(chan struct{}, parallel)
	)
	for _, t := range targets {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			sample, err := s.Scrape(ctx, t)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			samples = append(samples, sample)
		}()
	}
	wg.Wait()
	return samples, errors.Join(errs...)
}

// SetTraffic sets a model's traffic weights on one pod through its admin
// API: PUT {base}/v1/models/{model}/traffic {"weights": {"3": 90, "4": 10}},
// authenticated with token (an API key with the models:admin scope). It is
// idempotent; the controller calls it every interval so restarted pods get
// the weights too (the server keeps weights in memory only).
func SetTraffic(ctx context.Context, client *http.Client, base, modelName, token string, weights map[int32]int32) error {
	if client == nil {
		client = defaultClient
	}
	w := map[string]int32{}
	for v, n := range weights {
		w[strconv.Itoa(int(v))] = n
	}
	body, err := json.Marshal(map[string]any{"weights": w})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, base+"/v1/models/"+url.PathEscape(modelName)+"/traffic", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("setting traffic of %s: %w", modelName, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		detail, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return &TrafficError{Status: resp.StatusCode, Detail: string(bytes.TrimSpace(detail))}
	}
	return nil
}

// TrafficError is a refused traffic change: the pod answered, but not 2xx
// (the version is not loaded, the model unknown, the API missing).
type TrafficError struct {
	Status int
	Detail string
}

func (e *TrafficError) Error() string {
	return fmt.Sprintf("traffic weights refused: HTTP %d: %s", e.Status, e.Detail)
}
