package ocr

import "fmt"

// Tier is the review tier of a line: what a downstream workflow should do
// with it.
type Tier string

// The review tiers, from most to least trusted.
const (
	TierAccept Tier = "accept" // use as is
	TierVerify Tier = "verify" // spot-check
	TierReview Tier = "review" // a human should read it
)

// ReviewPolicy maps a line confidence to a Tier: at or above Accept is
// accept, at or above Verify is verify, anything lower is review.
type ReviewPolicy struct {
	Accept float64 `yaml:"accept" json:"accept"`
	Verify float64 `yaml:"verify" json:"verify"`
}

// DefaultReviewPolicy is the policy of docs/api.md.
func DefaultReviewPolicy() ReviewPolicy { return ReviewPolicy{Accept: 0.85, Verify: 0.60} }

// Validate reports a policy whose thresholds are out of [0,1] or inverted.
func (p ReviewPolicy) Validate() error {
	if p.Verify < 0 || p.Accept > 1 || p.Verify > p.Accept {
		return fmt.Errorf("review policy needs 0 <= verify (%g) <= accept (%g) <= 1", p.Verify, p.Accept)
	}
	return nil
}

// Tier returns the tier for confidence c.
func (p ReviewPolicy) Tier(c float64) Tier {
	switch {
	case c >= p.Accept:
		return TierAccept
	case c >= p.Verify:
		return TierVerify
	default:
		return TierReview
	}
}
