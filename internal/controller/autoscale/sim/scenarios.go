package sim

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/visionserve/visionserve/internal/controller/autoscale"
)

// Config is a named set of autoscaler parameters.
type Config struct {
	Name   string
	Params autoscale.Params
}

// Defaults is the VisionService defaults for the docs' fleet: 1..20
// replicas, 8 QPS per replica (80% of what one serves at full quality),
// confidence floor 0.80.
func Defaults() Config {
	p := autoscale.DefaultParams(1, 20, 8)
	p.ConfidenceFloor = 0.80
	return Config{Name: "defaults", Params: p}
}

// Naive is the same target without smoothing, tolerance, stabilization or
// step limit: what the defaults are measured against.
func Naive() Config {
	p := Defaults().Params
	p.EWMAAlpha, p.Tolerance, p.ScaleDownStabilization, p.ScaleUpStabilization, p.MaxStep = 1, 0, 0, 0, 0
	p.ConfidenceCooldown = 0
	return Config{Name: "naive", Params: p}
}

// A Case is a scenario run under a config.
type Case struct {
	Scenario Scenario
	Config   Config
}

func constant(v float64) func(time.Duration, *rand.Rand) float64 {
	return func(time.Duration, *rand.Rand) float64 { return v }
}

// step is 20 QPS, 80 from 5m, 20 again from 20m.
func step(t time.Duration, _ *rand.Rand) float64 {
	if t >= 5*time.Minute && t < 20*time.Minute {
		return 80
	}
	return 20
}

// Scenarios are the traces of docs/autoscaling.md.
func Scenarios() []Scenario {
	const d = 35 * time.Minute
	conf := constant(0.90)
	return []Scenario{
		{Name: "step 20 -> 80 -> 20 QPS", Duration: d, Load: step, Confidence: conf, Up: 5 * time.Minute, Down: 20 * time.Minute},
		// Reactions count from the end of each ramp.
		{Name: "ramp 10 -> 100 -> 10 QPS", Duration: d, Confidence: conf, Up: 15 * time.Minute, Down: 25 * time.Minute,
			Load: func(t time.Duration, _ *rand.Rand) float64 {
				m := t.Minutes()
				switch {
				case m < 5:
					return 10
				case m < 15:
					return 10 + 90*(m-5)/10
				case m < 20:
					return 100
				case m < 25:
					return 100 - 90*(m-20)/5
				}
				return 10
			}},
		{Name: "noisy 40 QPS +-30%, confidence 0.88 +-0.08", Duration: d,
			Load:       func(_ time.Duration, rng *rand.Rand) float64 { return 40 * (1 + 0.3*rng.NormFloat64()) },
			Confidence: func(_ time.Duration, rng *rand.Rand) float64 { return 0.88 + 0.08*rng.NormFloat64() }},
		{Name: "step, 30% of scrapes fail, 2 min outage", Duration: d, Load: step, Confidence: conf, Up: 5 * time.Minute, Down: 20 * time.Minute,
			ScrapeFails: func(t time.Duration, rng *rand.Rand) bool {
				return (t >= 10*time.Minute && t < 12*time.Minute) || rng.Float64() < 0.3
			}},
		{Name: "step, pods restart (2% per tick)", Duration: d, Load: step, Confidence: conf, Up: 5 * time.Minute, Down: 20 * time.Minute,
			RestartProbability: 0.02},
	}
}

// Tier is the scenario where the QPS target is optimistic (12 per replica
// where one serves 10 at full quality): only the confidence floor notices
// that pods run in their cheaper tier.
func Tier() Scenario {
	return Scenario{Name: "step 20 -> 60 QPS, target 12 too high", Duration: 35 * time.Minute, Confidence: constant(0.92), Up: 5 * time.Minute,
		Load: func(t time.Duration, _ *rand.Rand) float64 {
			if t >= 5*time.Minute {
				return 60
			}
			return 20
		}}
}

// Cases lists every row of the table.
func Cases() []Case {
	var out []Case
	for _, sc := range Scenarios() {
		out = append(out, Case{sc, Defaults()}, Case{sc, Naive()})
	}
	tier := Defaults()
	tier.Params.QPSPerReplica, tier.Params.ConfidenceFloor = 12, 0.85
	tier.Name = "defaults, floor 0.85"
	noFloor := tier
	noFloor.Params.ConfidenceFloor = 0
	noFloor.Name = "defaults, no floor"
	out = append(out, Case{Tier(), tier}, Case{Tier(), noFloor})
	return out
}

// Seed is the seed of the docs' table.
const Seed = 7

// Table runs every case and renders the markdown table of docs/autoscaling.md.
func Table() string {
	var b strings.Builder
	b.WriteString("| scenario | autoscaler | reaction up | reaction down | replica-seconds (ideal) | flaps | max replicas | shed | mean confidence |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|\n")
	for _, c := range Cases() {
		r := Run(c.Scenario, DefaultFleet(), c.Config.Params, Seed)
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %.0f (%.0f) | %d | %d | %.1f%% | %.3f |\n",
			c.Scenario.Name, c.Config.Name, reaction(r.ReactionUp, c.Scenario.Up), reaction(r.ReactionDown, c.Scenario.Down),
			r.ReplicaSeconds, r.IdealReplicaSeconds, r.Flaps, r.MaxDesired, 100*r.Shed, r.MeanConfidence)
	}
	return b.String()
}

func reaction(d, step time.Duration) string {
	switch {
	case step == 0:
		return "-"
	case d < 0:
		return "never"
	}
	return d.String()
}
