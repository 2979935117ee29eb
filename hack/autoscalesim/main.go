// Command autoscalesim prints docs/autoscaling.md's simulation table: every
// scenario of internal/controller/autoscale/sim under the default autoscaler
// and a naive one. It is deterministic; the docs test checks the table is
// current.
//
//	go run ./hack/autoscalesim
package main

import (
	"fmt"

	"github.com/visionserve/visionserve/internal/controller/autoscale/sim"
)

func main() { fmt.Print(sim.Table()) }
