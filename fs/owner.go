package fs

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
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
		if stop, err = s.fsys.pids.watch(pid, func() { s.ownerExited() }); err != nil {
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
	if caller != nil && caller.Pid != 0 && !sameNamespace(int(caller.Pid)) {
		return 0, errNotSameNamespace
	}
	if !alive(pid) {
		return 0, syscall.ESRCH
	}
	return pid, nil
}

// ancestor walks n parents up from pid, by /proc.
func ancestor(pid, n int) (int, error) {
	for range n {
		ppid, err := parentOf(pid)
		if err != nil || ppid <= 0 {
			return 0, syscall.ESRCH
		}
		pid = ppid
	}
	if !alive(pid) {
		return 0, syscall.ESRCH
	}
	return pid, nil
}

func parentOf(pid int) (int, error) {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses and may hold
	// spaces: state, ppid, ...
	i := strings.LastIndexByte(string(stat), ')')
	fields := strings.Fields(string(stat[i+1:]))
	if i < 0 || len(fields) < 2 {
		return 0, errors.New("unreadable /proc stat")
	}
	return strconv.Atoi(fields[1])
}

func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || err == syscall.EPERM
}

// sameNamespace says whether pid is in the daemon's PID namespace.
func sameNamespace(pid int) bool {
	theirs, err1 := os.Readlink("/proc/" + strconv.Itoa(pid) + "/ns/pid")
	ours, err2 := os.Readlink("/proc/self/ns/pid")
	return err1 == nil && err2 == nil && theirs == ours
}
