//go:build !linux

package sysmem

// Available cannot be known here.
func Available() (int64, bool) { return 0, false }
