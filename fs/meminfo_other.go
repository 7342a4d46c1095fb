//go:build !linux

package fs

// memAvailable cannot be known here; the filler then keeps to its window.
func memAvailable() (int64, bool) { return 0, false }
