//go:build !race

package spill

// raceEnabled: see race_on_test.go.
const raceEnabled = false
