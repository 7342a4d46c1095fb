package fs

import (
	"syscall"

	"github.com/spoolfs/spoolfs/fs/control"
)

// Observer is told of events worth counting: the filesystem measures
// nothing on its own, and knows nothing of how the counts are kept. Its
// methods are called from FUSE requests and from the expiry loop, many at
// once: they must be quick, must not block, and must not call back into
// the filesystem.
type Observer interface {
	// SessionEnded is called once per session, when it ends, with one of
	// SessionEndReasons.
	SessionEnded(reason string)
	// Refused is called each time an operation is refused for want of
	// space: syscall.ENOSPC (the mount is full, or the spill disk) or
	// syscall.EDQUOT (a session's quota).
	Refused(errno syscall.Errno)
	// CacheFilled is called with the bytes of each piece of a file the
	// cacheFiller has stored in the kernel's page cache after a miss.
	CacheFilled(bytes int64)
}

// SessionEndReasons lists the reasons Observer.SessionEnded is given.
func SessionEndReasons() []string {
	return []string{control.ReasonTTL, control.ReasonIdle, control.ReasonOwner, control.ReasonRemoved}
}

// observerOr returns o, or one that ignores everything if o is nil.
func observerOr(o Observer) Observer {
	if o == nil {
		return nopObserver{}
	}
	return o
}

type nopObserver struct{}

func (nopObserver) SessionEnded(string)   {}
func (nopObserver) Refused(syscall.Errno) {}
func (nopObserver) CacheFilled(int64)     {}
