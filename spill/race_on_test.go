//go:build race

package spill

// raceEnabled says whether the race detector is on: its shadow memory
// faults pages of its own, which a count of page faults would include.
const raceEnabled = true
