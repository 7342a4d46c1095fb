package fs

import (
	"errors"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/spoolfs/spoolfs/fs/control"
	"github.com/spoolfs/spoolfs/fs/proc"
)

// setOwner ties the session to a process: it ends when that process exits.
//
// A PID means something only in a PID namespace. The kernel gives us the
// caller's PID as seen from the daemon's namespace (0 if it cannot be seen
// from there). So a plain number is accepted only from a caller in the
// daemon's own namespace, and "ancestor:N" names the caller's Nth ancestor
// (0: the caller itself): the CLI, run from a shell inside a container,
// resolves --pid $$ to that form, and we walk the same chain of parents
// from the caller's PID in our namespace. "0" or "none" removes the owner.
// control.ParseOwner reads the value; this resolves it.
func (s *session) setOwner(caller *fuse.Caller, value string) syscall.Errno {
	pid, err := resolveOwner(caller, value)
	if err != nil {
		s.fsys.log.Debug("refused session owner", "value", value, "err", err)
		return refusedValueErrno(err)
	}
	var stop func()
	if pid != 0 {
		if stop, err = s.fsys.pids.Watch(pid, func() { s.ownerExited() }); err != nil {
			return syscall.ESRCH
		}
	}
	s.mu.Lock()
	old := s.stopWatch
	s.pid, s.stopWatch = pid, stop
	s.mu.Unlock()
	if old != nil {
		old()
	}
	return 0
}

func (s *session) ownerExited() {
	s.mu.Lock()
	s.endRequest = control.ReasonOwner
	s.mu.Unlock()
	s.fsys.sessions.schedule(s)
}

// errNotSameNamespace refuses a plain PID from a caller whose PIDs are not
// ours: the number would name another process here.
var errNotSameNamespace = errors.New("pid is from another PID namespace; use ancestor:N")

// resolveOwner turns an owner value into a PID in the daemon's namespace.
func resolveOwner(caller *fuse.Caller, value string) (int, error) {
	owner, err := control.ParseOwner(value)
	switch {
	case err != nil:
		return 0, err
	case owner.OfCaller:
		if caller == nil || caller.Pid == 0 {
			return 0, errors.New("the caller is not visible from the daemon's PID namespace")
		}
		return ancestor(int(caller.Pid), owner.Ancestor)
	case owner.PID == 0:
		return 0, nil
	}
	if caller != nil && caller.Pid != 0 && !proc.SameNamespace(int(caller.Pid)) {
		return 0, errNotSameNamespace
	}
	if !proc.Alive(owner.PID) {
		return 0, syscall.ESRCH
	}
	return owner.PID, nil
}

// ancestor walks n parents up from pid.
func ancestor(pid, n int) (int, error) {
	for range n {
		ppid, err := proc.Parent(pid)
		if err != nil || ppid <= 0 {
			return 0, syscall.ESRCH
		}
		pid = ppid
	}
	if !proc.Alive(pid) {
		return 0, syscall.ESRCH
	}
	return pid, nil
}
