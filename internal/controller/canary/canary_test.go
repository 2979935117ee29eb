package canary

import (
	"strings"
	"testing"
	"time"
)

func TestJudge(t *testing.T) {
	p := Params{Margin: 0.02, MaxErrorRatioIncrease: 0.02, MinSamples: 50, Analysis: 10 * time.Minute}
	cases := []struct {
		name   string
		o      Observation
		action Action
		reason string
		inMsg  string
	}{
		{"too few canary samples", Observation{Elapsed: time.Hour, StableSum: 90, StableCount: 100, CanarySum: 9, CanaryCount: 10, Requests: 110},
			Continue, ReasonWaitingForSamples, "10 canary and 100 stable"},
		{"healthy, analysis running", Observation{Elapsed: time.Minute, StableSum: 90, StableCount: 100, CanarySum: 89, CanaryCount: 100, Requests: 200},
			Continue, ReasonHealthy, "1m0s of 10m0s"},
		{"within the margin is healthy", Observation{Elapsed: time.Minute, StableSum: 90, StableCount: 100, CanarySum: 88.5, CanaryCount: 100, Requests: 200},
			Continue, ReasonHealthy, "0.8850"},
		{"below the margin rolls back", Observation{Elapsed: time.Minute, StableSum: 90, StableCount: 100, CanarySum: 87, CanaryCount: 100, Requests: 200},
			Rollback, ReasonConfidenceBelowStable, "0.8700 (100 predictions) is below stable 0.9000"},
		{"below the margin rolls back even after the analysis", Observation{Elapsed: time.Hour, StableSum: 90, StableCount: 100, CanarySum: 80, CanaryCount: 100, Requests: 200},
			Rollback, ReasonConfidenceBelowStable, ""},
		{"errors rising roll back", Observation{Elapsed: time.Minute, StableSum: 90, StableCount: 100, CanarySum: 90, CanaryCount: 100, Requests: 200, ErrorRatio: 0.05, BaselineErrorRatio: 0.01},
			Rollback, ReasonErrorRatioIncreased, "0.0500 over 200 requests"},
		{"errors at the baseline are fine", Observation{Elapsed: time.Minute, StableSum: 90, StableCount: 100, CanarySum: 90, CanaryCount: 100, Requests: 200, ErrorRatio: 0.05, BaselineErrorRatio: 0.04},
			Continue, ReasonHealthy, ""},
		{"errors need enough requests", Observation{Elapsed: time.Minute, StableSum: 9, StableCount: 10, CanarySum: 1, CanaryCount: 1, Requests: 11, ErrorRatio: 0.5},
			Continue, ReasonWaitingForSamples, ""},
		{"healthy for the analysis promotes", Observation{Elapsed: 10 * time.Minute, StableSum: 90, StableCount: 100, CanarySum: 91, CanaryCount: 100, Requests: 200},
			Promote, ReasonPromoted, "healthy for 10m0s"},
		{"no promotion without samples", Observation{Elapsed: time.Hour},
			Continue, ReasonWaitingForSamples, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := Judge(p, tc.o)
			if v.Action != tc.action || v.Reason != tc.reason || !strings.Contains(v.Message, tc.inMsg) {
				t.Fatalf("got %s %s %q, want %s %s containing %q", v.Action, v.Reason, v.Message, tc.action, tc.reason, tc.inMsg)
			}
		})
	}
}
