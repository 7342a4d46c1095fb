//go:build !linux

package fs

import "syscall"

// pidWatcher polls where Linux's pidfds are not available.
type pidWatcher struct{ *pidPoller }

func newPidWatcher() *pidWatcher { return &pidWatcher{newPidPoller()} }

// processStart has no PID-reuse guard here: it only says whether pid lives.
func processStart(pid int) (string, error) {
	if err := syscall.Kill(pid, 0); err != nil && err != syscall.EPERM {
		return "", syscall.ESRCH
	}
	return "", nil
}
