package tier

import (
	"testing"
	"time"
)

func TestSwitch(t *testing.T) {
	p := Policy{EnterQueue: 4, ExitQueue: 0, Sustain: 10 * time.Second}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	type obs struct {
		at    time.Duration
		queue int
		want  Name
	}
	cases := []struct {
		name string
		p    Policy
		seq  []obs
	}{
		{"a blip changes nothing", p, []obs{{0, 9, Full}, {5 * time.Second, 9, Full}, {6 * time.Second, 1, Full}, {20 * time.Second, 9, Full}}},
		{"sustained queueing switches", p, []obs{{0, 4, Full}, {5 * time.Second, 6, Full}, {10 * time.Second, 5, Cheap}, {11 * time.Second, 2, Cheap}}},
		{"it comes back once the queue stayed empty", p, []obs{{0, 5, Full}, {10 * time.Second, 5, Cheap},
			{12 * time.Second, 0, Cheap}, {15 * time.Second, 1, Cheap}, {16 * time.Second, 0, Cheap}, {26 * time.Second, 0, Full}}},
		{"between the thresholds it stays", p, []obs{{0, 5, Full}, {10 * time.Second, 5, Cheap}, {30 * time.Second, 2, Cheap}, {60 * time.Second, 3, Cheap}}},
		{"disabled never switches", Policy{}, []obs{{0, 100, Full}, {time.Hour, 100, Full}}},
		{"no sustain switches at once", Policy{EnterQueue: 1}, []obs{{0, 1, Cheap}, {time.Second, 0, Full}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := NewSwitch(tc.p)
			for i, o := range tc.seq {
				if got := s.Observe(o.queue, t0.Add(o.at)); got != o.want {
					t.Fatalf("step %d (queue %d at %s): %s, want %s", i, o.queue, o.at, got, o.want)
				}
			}
		})
	}
	var nilSwitch *Switch
	if nilSwitch.Observe(100, t0) != Full {
		t.Error("a nil switch is not full")
	}
}

func TestPolicyValidate(t *testing.T) {
	for _, tc := range []struct {
		p  Policy
		ok bool
	}{
		{Policy{}, true},
		{Policy{EnterQueue: 8, ExitQueue: 1, Sustain: time.Second}, true},
		{Policy{EnterQueue: 8, ExitQueue: 8}, false},
		{Policy{EnterQueue: 8, ExitQueue: -1}, false},
		{Policy{EnterQueue: 8, Sustain: -time.Second}, false},
	} {
		if err := tc.p.Validate(); (err == nil) != tc.ok {
			t.Errorf("%+v: %v", tc.p, err)
		}
	}
}
