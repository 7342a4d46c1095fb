package main

import "testing"

// TestTrimmer walks the trimmer through the RAM held at successive looks
// and checks when it trims.
func TestTrimmer(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		name  string
		held  []int64 // MiB, one look each; the trimmer starts at the first
		trims []bool  // for each look after the first
	}{
		{"steady", []int64{64, 64, 64}, []bool{false, false}},
		{"growing", []int64{0, 32, 64, 96}, []bool{false, false, false}},
		{"a large fall at once", []int64{64, 0, 0}, []bool{true, false}},
		// A look in the middle of a deletion trims the first half; the
		// second half is returned once the fall has stopped.
		{"a fall seen halfway", []int64{64, 31, 0, 0, 0}, []bool{true, false, true, false}},
		{"a small fall, then quiet", []int64{64, 61, 61}, []bool{false, false}},
		{"a fall past the settle size, then quiet", []int64{64, 58, 58, 58}, []bool{false, true, false}},
		{"falls that add up past the drop", []int64{64, 50, 40, 30}, []bool{false, false, true}},
		{"a rise after a trim resets the peak", []int64{64, 0, 40, 0}, []bool{true, false, true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTrimmer(tc.held[0] * mib)
			for i, h := range tc.held[1:] {
				if got := tr.observe(h * mib); got != tc.trims[i] {
					t.Errorf("look %d (held %d MiB after %v): trim = %v, want %v", i+1, h, tc.held[:i+1], got, tc.trims[i])
				}
			}
		})
	}
}
