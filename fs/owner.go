package fs

import (
	"errors"
	"strconv"
	"strings"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"

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
func (s *session) setOwner(caller *fuse.Caller, value string) syscall.Errno {
	pid, err := resolveOwner(caller, value)
	if err != nil {
		s.fsys.log.Debug("refused session owner", "value", value, "err", err)
		if errors.Is(err, syscall.ESRCH) {
			return syscall.ESRCH
		}
		return syscall.EINVAL
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
	s.endRequest = reasonOwner
	s.mu.Unlock()
	s.fsys.sessions.schedule(s)
}

// resolveOwner turns an owner value into a PID in the daemon's namespace.
func resolveOwner(caller *fuse.Caller, value string) (int, error) {
	value = strings.TrimSpace(value)
	if value == "0" || value == "none" {
		return 0, nil
	}
	if rest, ok := strings.CutPrefix(value, "ancestor:"); ok {
		n, err := strconv.Atoi(rest)
		if err != nil || n < 0 || n > 1024 {
			return 0, errors.New("ancestor:N needs N between 0 and 1024")
		}
		if caller == nil || caller.Pid == 0 {
			return 0, errors.New("the caller is not visible from the daemon's PID namespace")
		}
		return ancestor(int(caller.Pid), n)
	}
	pid, err := strconv.Atoi(value)
	if err != nil || pid <= 0 {
		return 0, errors.New("not a PID")
	}
	if caller != nil && caller.Pid != 0 && !proc.SameNamespace(int(caller.Pid)) {
		return 0, errNotSameNamespace
	}
	if !proc.Alive(pid) {
		return 0, syscall.ESRCH
	}
	return pid, nil
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
