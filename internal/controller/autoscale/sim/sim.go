// Package sim is a trace-driven simulator of a visionserve fleet under the
// autoscaler. Each tick it pushes the scenario's offered load through a
// simple server model (capacity per replica; under sustained queueing a pod
// switches to a cheaper tier that serves more but with lower confidence;
// beyond that, requests are refused), scrapes every ready pod's counters
// into an autoscale.Window exactly as the operator does, and applies the
// Autoscaler's decision (new pods become ready after a startup delay).
//
// It is deterministic for a given seed and uses simulated time only, so the
// tests can assert reaction times and flaps without a wall clock, and
// docs/autoscaling.md's table is reproducible (go run ./hack/autoscalesim).
package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/visionserve/visionserve/internal/controller/autoscale"
)

// Fleet models the servers.
type Fleet struct {
	// Capacity is the QPS one replica serves in its full-quality tier.
	Capacity float64
	// CheapCapacity and CheapPenalty describe the cheaper tier a pod
	// switches to after two overloaded ticks in a row: it serves
	// CheapCapacity QPS with confidence lowered by CheapPenalty.
	CheapCapacity, CheapPenalty float64
	// Workers per pod, for the utilization gauge.
	Workers float64
	// StartupDelay is how long a new or restarted pod takes to be ready.
	StartupDelay time.Duration
	// Interval between decisions (and scrapes); Window is the rate window.
	Interval, Window time.Duration
}

// DefaultFleet is the fleet of docs/autoscaling.md: 10 QPS per replica at
// full quality (15 in the cheap tier, 0.12 less confident), 4 workers, 30 s
// to start, decisions every 15 s over a 1 min window.
func DefaultFleet() Fleet {
	return Fleet{Capacity: 10, CheapCapacity: 15, CheapPenalty: 0.12, Workers: 4,
		StartupDelay: 30 * time.Second, Interval: autoscale.DefaultInterval, Window: autoscale.DefaultWindow}
}

// Scenario is a load trace and what goes wrong along it.
type Scenario struct {
	Name     string
	Duration time.Duration
	// Load is the offered QPS at t.
	Load func(t time.Duration, rng *rand.Rand) float64
	// Confidence is a full-tier prediction's mean confidence at t (per pod
	// and tick, so noise goes here).
	Confidence func(t time.Duration, rng *rand.Rand) float64
	// ScrapeFails says whether scraping a pod fails at t.
	ScrapeFails func(t time.Duration, rng *rand.Rand) bool
	// RestartProbability is the chance per pod per tick that it restarts
	// (counters reset, not ready for StartupDelay).
	RestartProbability float64
	// Up and Down are the first load increase and decrease, for reaction
	// times (0: none).
	Up, Down time.Duration
}

// Tick is the state at the end of one tick.
type Tick struct {
	T                     time.Duration
	Load                  float64
	Running, Ready        int
	Desired               int32
	Reason                autoscale.Reason
	Confidence, ShedRatio float64
	Message               string // the decision's
}

// Result summarises one run.
type Result struct {
	Scenario string
	Ticks    []Tick
	// ReactionUp is how long after Scenario.Up the ready replicas first
	// covered the load at the target; ReactionDown how long after
	// Scenario.Down the desired count first came down to what the load
	// needs. -1: never within the run; 0 when the scenario has no such step.
	ReactionUp, ReactionDown time.Duration
	// ReplicaSeconds is the sum over ticks of running pods x interval;
	// IdealReplicaSeconds the same for ceil(load / target) pods.
	ReplicaSeconds, IdealReplicaSeconds float64
	// Flaps counts reversals of the desired count's direction within
	// FlapHorizon of the previous change.
	Flaps int
	// Shed is the share of offered requests refused; MeanConfidence the mean
	// confidence of the served ones.
	Shed, MeanConfidence float64
	MaxDesired           int32
}

// FlapHorizon: a change opposite to the previous one within this long is a flap.
const FlapHorizon = 5 * time.Minute

type pod struct {
	name     string
	readyAt  time.Duration
	cheap    bool
	overload int // consecutive overloaded ticks
	requests float64
	conf     autoscale.SumCount
	busy     float64
	queue    float64
}

// Run simulates a scenario.
func Run(sc Scenario, f Fleet, p autoscale.Params, seed uint64) Result {
	// Separate streams: the load trace is the same whatever the autoscaler
	// does, so every config of a scenario sees the same traffic.
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	loadRng := rand.New(rand.NewPCG(seed, 0x10ad))
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	win := autoscale.NewWindow(f.Window)
	as := autoscale.New(p)
	dt := f.Interval
	current := clampNeeded(sc.Load(0, loadRng), p) // start settled
	next := 0
	newPod := func(at time.Duration) *pod {
		next++
		return &pod{name: fmt.Sprintf("pod-%d", next), readyAt: at + f.StartupDelay}
	}
	var pods []*pod
	for range current {
		pods = append(pods, &pod{name: fmt.Sprintf("pod-%d", next+1)}) // ready at 0
		next++
	}
	res := Result{Scenario: sc.Name, ReactionUp: 0, ReactionDown: 0}
	if sc.Up > 0 {
		res.ReactionUp = -1
	}
	if sc.Down > 0 {
		res.ReactionDown = -1
	}
	var offeredTotal, shedTotal, servedTotal, confTotal float64
	var lastDir int
	var lastChange time.Duration = -time.Hour

	for t := dt; t <= sc.Duration; t += dt {
		load := max(sc.Load(t, loadRng), 0)
		// Traffic over (t-dt, t], spread over the pods ready at its start.
		var ready []*pod
		for _, pd := range pods {
			if pd.readyAt <= t-dt {
				ready = append(ready, pd)
			}
		}
		offered := load * dt.Seconds()
		offeredTotal += offered
		var servedTick, confTick float64
		if len(ready) == 0 {
			shedTotal += offered
		}
		for _, pd := range ready {
			share := offered / float64(len(ready))
			full := f.Capacity * dt.Seconds()
			if share > full {
				pd.overload++
			} else {
				pd.overload = 0
			}
			pd.cheap = pd.overload >= 2 // sustained queueing: the cheaper tier
			capacity, conf := full, sc.Confidence(t, rng)
			if pd.cheap {
				capacity, conf = f.CheapCapacity*dt.Seconds(), conf-f.CheapPenalty
			}
			conf = min(max(conf, 0), 1)
			served := min(share, capacity)
			pd.requests += share // refused requests are counted too (429)
			pd.conf.Sum += served * conf
			pd.conf.Count += served
			pd.busy = f.Workers * min(share/capacity, 1)
			pd.queue = 0
			if share > capacity*0.95 {
				pd.queue = f.Workers
			}
			shedTotal += share - served
			servedTick += served
			confTick += served * conf
		}
		servedTotal += servedTick
		confTotal += confTick

		// Restarts: counters reset, the pod is out for StartupDelay.
		for _, pd := range pods {
			if sc.RestartProbability > 0 && rng.Float64() < sc.RestartProbability {
				*pd = pod{name: pd.name, readyAt: t + f.StartupDelay}
			}
		}

		// Scrape the ready pods, then decide.
		readyNow := 0
		now := start.Add(t)
		for _, pd := range pods {
			if pd.readyAt > t {
				continue
			}
			readyNow++
			if sc.ScrapeFails != nil && sc.ScrapeFails(t, rng) {
				continue
			}
			win.Add(autoscale.Sample{Pod: pd.name, Time: now, Requests: pd.requests,
				Confidence: map[autoscale.Version]autoscale.SumCount{{Model: "ocr-eng", Version: "1"}: pd.conf},
				Busy:       pd.busy, Workers: f.Workers, Queue: pd.queue})
		}
		alive, serving := map[string]bool{}, map[string]bool{}
		for _, pd := range pods {
			alive[pd.name] = true
			serving[pd.name] = pd.readyAt <= t
		}
		win.Forget(func(name string) bool { return alive[name] })
		win.Retire(func(name string) bool { return serving[name] })
		d := as.Decide(win.Observe(now, readyNow), current)

		if d.Desired != current {
			dir := 1
			if d.Desired < current {
				dir = -1
			}
			if lastDir != 0 && dir != lastDir && t-lastChange <= FlapHorizon {
				res.Flaps++
			}
			lastDir, lastChange = dir, t
		}
		for int32(len(pods)) < d.Desired {
			pods = append(pods, newPod(t))
		}
		if int32(len(pods)) > d.Desired {
			// As a ReplicaSet does: not-ready pods first, then the newest.
			slices.SortStableFunc(pods, func(a, b *pod) int {
				ar, br := a.readyAt <= t, b.readyAt <= t
				if ar != br {
					if ar {
						return -1
					}
					return 1
				}
				return 0
			})
			pods = pods[:d.Desired]
		}
		current = d.Desired

		needed := clampNeeded(load, p)
		readyAfter := 0
		for _, pd := range pods {
			if pd.readyAt <= t {
				readyAfter++
			}
		}
		if sc.Up > 0 && res.ReactionUp < 0 && t >= sc.Up && int32(readyAfter) >= needed {
			res.ReactionUp = t - sc.Up
		}
		if sc.Down > 0 && res.ReactionDown < 0 && t >= sc.Down && d.Desired <= needed {
			res.ReactionDown = t - sc.Down
		}
		res.ReplicaSeconds += float64(len(pods)) * dt.Seconds()
		res.IdealReplicaSeconds += float64(needed) * dt.Seconds()
		res.MaxDesired = max(res.MaxDesired, d.Desired)
		tick := Tick{T: t, Load: load, Running: len(pods), Ready: readyAfter, Desired: d.Desired, Reason: d.Reason, Message: d.Message()}
		if servedTick > 0 {
			tick.Confidence = confTick / servedTick
		}
		if offered > 0 {
			tick.ShedRatio = 1 - servedTick/offered
		}
		res.Ticks = append(res.Ticks, tick)
	}
	if offeredTotal > 0 {
		res.Shed = shedTotal / offeredTotal
	}
	if servedTotal > 0 {
		res.MeanConfidence = confTotal / servedTotal
	}
	return res
}

// clampNeeded is the replica count the load needs at the configured target.
func clampNeeded(load float64, p autoscale.Params) int32 {
	n := int32(math.Ceil(load/p.QPSPerReplica - 1e-9))
	return min(max(n, p.MinReplicas), p.MaxReplicas)
}
