package sim

import (
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/visionserve/visionserve/internal/controller/autoscale"
)

func run(t *testing.T, sc Scenario, c Config) Result {
	t.Helper()
	r := Run(sc, DefaultFleet(), c.Params, Seed)
	if testing.Verbose() {
		for _, k := range r.Ticks {
			t.Logf("%7s load %5.1f running %2d ready %2d desired %2d %-18s conf %.3f", k.T, k.Load, k.Running, k.Ready, k.Desired, k.Reason, k.Confidence)
		}
	}
	return r
}

func scenario(t *testing.T, prefix string) Scenario {
	t.Helper()
	for _, sc := range Scenarios() {
		if strings.HasPrefix(sc.Name, prefix) {
			return sc
		}
	}
	t.Fatalf("no scenario %q", prefix)
	return Scenario{}
}

// TestScenarios checks what each trace must show under the defaults.
// Everything here is simulated time: no wall clock is involved.
func TestScenarios(t *testing.T) {
	down := Defaults().Params.ScaleDownStabilization
	for _, sc := range Scenarios() {
		t.Run(sc.Name, func(t *testing.T) {
			r := run(t, sc, Defaults())
			if r.Flaps != 0 {
				t.Errorf("%d flaps", r.Flaps)
			}
			if r.ReplicaSeconds > 1.4*r.IdealReplicaSeconds {
				t.Errorf("used %.0f replica-seconds, more than 1.4 x the ideal %.0f", r.ReplicaSeconds, r.IdealReplicaSeconds)
			}
			if sc.Up > 0 && (r.ReactionUp < 0 || r.ReactionUp > 2*time.Minute) {
				t.Errorf("reaction to the rise %v, want within 2m", r.ReactionUp)
			}
			if sc.Down > 0 && (r.ReactionDown < 0 || r.ReactionDown > down+2*time.Minute) {
				t.Errorf("reaction to the fall %v, want within the down window + 2m", r.ReactionDown)
			}
			last := r.Ticks[len(r.Ticks)-1]
			if want := clampNeeded(last.Load, Defaults().Params); sc.Down > 0 && last.Desired != want {
				t.Errorf("ended at %d replicas, the load needs %d", last.Desired, want)
			}
			if r.Shed > 0.05 {
				t.Errorf("shed %.1f%% of the load", 100*r.Shed)
			}
		})
	}
}

// TestNaiveFlaps shows the flap count can fail: without smoothing,
// tolerance and windows the same noisy trace flaps.
func TestNaiveFlaps(t *testing.T) {
	r := run(t, scenario(t, "noisy"), Naive())
	if r.Flaps < 5 {
		t.Fatalf("naive autoscaler flapped %d times on the noisy trace; the detector or the trace is broken", r.Flaps)
	}
}

// TestRestartsMeasuredRight: a restarting pod is out of service for its
// startup delay, its traffic spread over the others. Carrying its old rate
// on through the window counted that traffic twice, and even the naive
// autoscaler (no smoothing or windows to hide it) flapped 16 times on the
// restart trace; measured right it flaps at most once.
func TestRestartsMeasuredRight(t *testing.T) {
	r := run(t, scenario(t, "step, pods restart"), Naive())
	if r.Flaps > 1 {
		t.Fatalf("naive autoscaler flapped %d times on the restart trace: restarting pods are counted twice", r.Flaps)
	}
}

// TestMissingMetricsNeverScaleDown: during the outage every decision holds.
func TestMissingMetricsNeverScaleDown(t *testing.T) {
	r := run(t, scenario(t, "step, 30% of scrapes fail"), Defaults())
	var sawNoMetrics bool
	prev := r.Ticks[0].Desired
	for _, k := range r.Ticks[1:] {
		if k.Reason == autoscale.HoldNoMetrics {
			sawNoMetrics = true
			if k.Desired != prev {
				t.Fatalf("%v: changed %d -> %d without metrics", k.T, prev, k.Desired)
			}
		}
		prev = k.Desired
	}
	if !sawNoMetrics {
		t.Fatal("the outage never produced a NoMetrics decision")
	}
}

// TestConfidenceFloorRestoresQuality is the loop of the design: with a QPS
// target set too high, pods fall into their cheaper tier; only the
// confidence floor notices and adds replicas until quality is back.
func TestConfidenceFloorRestoresQuality(t *testing.T) {
	var withFloor, without Result
	for _, c := range Cases() {
		if c.Scenario.Name != Tier().Name {
			continue
		}
		if c.Config.Params.ConfidenceFloor > 0 {
			withFloor = run(t, c.Scenario, c.Config)
		} else {
			without = run(t, c.Scenario, c.Config)
		}
	}
	if without.MeanConfidence > 0.85 || withFloor.MeanConfidence < 0.9 {
		t.Fatalf("mean confidence with floor %.3f, without %.3f: want >= 0.9 and <= 0.85", withFloor.MeanConfidence, without.MeanConfidence)
	}
	if withFloor.MaxDesired <= without.MaxDesired {
		t.Fatalf("the floor added no replicas (%d vs %d)", withFloor.MaxDesired, without.MaxDesired)
	}
	if withFloor.Flaps != 0 {
		t.Fatalf("%d flaps with the floor", withFloor.Flaps)
	}
}

func TestDeterministic(t *testing.T) {
	sc := scenario(t, "step, pods restart")
	a, b := Run(sc, DefaultFleet(), Defaults().Params, 3), Run(sc, DefaultFleet(), Defaults().Params, 3)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("two runs with the same seed differ")
	}
}

// TestDocsTable: docs/autoscaling.md shows the table this code produces.
func TestDocsTable(t *testing.T) {
	doc, err := os.ReadFile("../../../../docs/autoscaling.md")
	if err != nil {
		t.Fatal(err)
	}
	if table := Table(); !strings.Contains(string(doc), table) {
		t.Fatalf("docs/autoscaling.md does not hold the current simulation table; paste the output of `go run ./hack/autoscalesim`:\n%s", table)
	}
}
