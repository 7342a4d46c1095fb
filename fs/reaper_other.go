//go:build !linux

package fs

import "errors"

// lockThread: only Linux's rmdir shows the root's watchers a session's end
// (see reaper_linux.go); elsewhere the reaper needs no thread of its own.
func lockThread() (tid uint32, unlock func()) { return 0, func() {} }

var errNoRmdir = errors.New("sessions are removed by notification only here")

func (r *reaper) removeThroughKernel(e endedSession, tid uint32) error { return errNoRmdir }

func (r *reaper) mounted(dir string) error { return nil }
