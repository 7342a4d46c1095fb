package main

import (
	"os/exec"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// parentPID asks ps(1): FreeBSD has no /proc by default, and x/sys has no
// kinfo_proc reader for it.
func parentPID(pid int) (int, error) {
	out, err := exec.Command("ps", "-o", "ppid=", "-p", strconv.Itoa(pid)).Output()
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(out)))
}

func physicalMemory() int64 {
	n, err := unix.SysctlUint64("hw.physmem")
	if err != nil {
		return 1 << 30
	}
	return int64(n)
}

const errNoAttr = unix.ENOATTR

// vfsOptions: the generic options as BSD mount flags.
var vfsOptions = []vfsOption{
	{"nosuid", unix.MNT_NOSUID, 0}, {"suid", 0, unix.MNT_NOSUID},
	{"nodev", 0, 0}, {"dev", 0, 0}, // FreeBSD has no device nodes on file systems
	{"noexec", unix.MNT_NOEXEC, 0}, {"exec", 0, unix.MNT_NOEXEC},
	{"noatime", unix.MNT_NOATIME, 0}, {"relatime", 0, 0}, {"strictatime", 0, unix.MNT_NOATIME},
	{"nodiratime", 0, 0},
}

const defaultVFSFlags = unix.MNT_NOSUID

// processOfThread: FUSE here names the calling process, not its thread.
func processOfThread(tid uint32) uint32 { return tid }
