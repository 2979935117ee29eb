//go:build race

package app_test

// raceEnabled: the race detector's shadow memory grows with the heap and
// is not returned to the system, so resident-size checks mean nothing.
const raceEnabled = true
