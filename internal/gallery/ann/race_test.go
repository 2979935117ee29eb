//go:build race

package ann

// raceEnabled shrinks the recall test: the race detector slows the graph
// build about twentyfold, and the small size still checks concurrency.
const raceEnabled = true
