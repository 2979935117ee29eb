// Package autoscale decides how many replicas a VisionService needs. It is
// pure: no I/O, no clock, no Kubernetes. The controller feeds it what it
// scraped (Window turns per-pod counter samples into an Observation over
// the rate window) and asks an Autoscaler for a Decision; the simulator in
// ./sim drives the very same code from traces.
//
// One decision, in order:
//
//  1. Measure: total QPS and mean confidence over the window, from counter
//     increases (resets handled), across the pods that reported. Pods that
//     did not report count as idle when the fleet looks overloaded and as
//     fully loaded when it looks underloaded, so a missing pod never pushes
//     the decision its own way (the HPA's rule).
//  2. Smooth: an EWMA of total QPS and of mean confidence. No metrics at
//     all: hold the replica count, never guess.
//  3. Recommend: max(ceil(QPS / qpsPerReplica) outside the tolerance band,
//     current + max(1, 10%) while confidence is under its floor and the pods
//     are busy), within minReplicas..maxReplicas.
//  4. Stabilize: scale up only to the lowest, and down only to the highest,
//     recommendation made within the up and down windows; then move at most
//     maxStep replicas.
//
// It must never return a replica count outside minReplicas..maxReplicas, and
// never scale on data it does not have.
package autoscale
