//go:build !linux

package fs

import "errors"

// lockThread: only Linux's rmdir shows the root's watchers a session's end
// (see reaper_linux.go); elsewhere the reaper needs no thread of its own.
func lockThread() (tid uint32, unlock func()) { return 0, func() {} }

var errNoRmdir = errors.New("sessions are removed by notification only here")

// remover would remove sessions with rmdir(2); here it leaves them to
// NOTIFY_DELETE.
type remover struct{}

func (r *reaper) newRemover(tid uint32) *remover { return &remover{} }

func (rm *remover) remove(e endedSession) error { return errNoRmdir }

func (rm *remover) letGoIfUnmounted() {}

func (rm *remover) close() {}

func (r *reaper) mounted(dir string) error { return nil }
