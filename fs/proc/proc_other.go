//go:build !linux

package proc

import "syscall"

// Alive reports whether pid exists (a zombie cannot be told apart here).
func Alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || err == syscall.EPERM
}

// startToken has no PID-reuse guard here: it only says whether pid lives.
func startToken(pid int) (string, error) {
	if !Alive(pid) {
		return "", syscall.ESRCH
	}
	return "", nil
}

// SameNamespace: there are no PID namespaces here.
func SameNamespace(pid int) bool { return true }

// ThreadGroup: FUSE here names the calling process, not its thread.
func ThreadGroup(tid uint32) uint32 { return tid }

// InGroup: the supplementary groups of another process cannot be read
// here, so none is known.
func InGroup(tid int, gid uint32) bool { return false }
