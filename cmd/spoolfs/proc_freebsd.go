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
