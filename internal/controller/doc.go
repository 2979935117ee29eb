// Package controller is the visionserve operator: the VisionService
// reconciler, which owns a Deployment, Service, PodDisruptionBudget,
// optional ConfigMap and model claim, the traffic ConfigMap, and a
// ServiceMonitor when that CRD exists; and, inside the same reconcile, the
// autoscaler and the canary.
//
// A reconcile, in order: read the VisionService; refuse what the schema
// cannot (a config that is not YAML) with a terminal error and a condition;
// measure the fleet when a decision is due (scrape each ready pod or query
// Prometheus) and let autoscale decide the replica count and canary judge
// the version under test, recording each decision as an event with its
// inputs; hold every ready pod to the traffic status.canary implies (those
// not given it yet, all of them after a decision: routing.go); apply every
// owned object with server-side apply (idempotent: an unchanged spec
// changes nothing), the traffic ConfigMap new pods start from among them;
// then write status. It requeues itself for the next decision.
//
// Decisions depend on memory (the rate window, the EWMA, past
// recommendations, what each pod was routed to) kept per VisionService in
// the process; status keeps the replica count and the canary's progress
// and verdict, so a restarted operator resumes without scaling down early,
// judging a canary twice or losing a rollback. The package must
// never be imported by the server: it pulls in Kubernetes.
package controller
