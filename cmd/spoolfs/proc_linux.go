package main

import (
	"errors"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// parentPID reads a process's parent from /proc, in our PID namespace.
func parentPID(pid int) (int, error) {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	i := strings.LastIndexByte(string(stat), ')')
	if i < 0 {
		return 0, errors.New("unreadable /proc stat")
	}
	fields := strings.Fields(string(stat[i+1:]))
	if len(fields) < 2 {
		return 0, errors.New("unreadable /proc stat")
	}
	return strconv.Atoi(fields[1])
}

func physicalMemory() int64 {
	var info unix.Sysinfo_t
	if err := unix.Sysinfo(&info); err != nil {
		return 1 << 30
	}
	return int64(info.Totalram) * int64(info.Unit)
}

const errNoAttr = unix.ENODATA

// vfsOptions are the generic options spoolfs honours as mount flags, like
// any filesystem: nosuid and nodev are on unless undone (a scratch space
// has no business with setuid programs or devices), noexec on request.
var vfsOptions = []vfsOption{
	{"nosuid", unix.MS_NOSUID, 0}, {"suid", 0, unix.MS_NOSUID},
	{"nodev", unix.MS_NODEV, 0}, {"dev", 0, unix.MS_NODEV},
	{"noexec", unix.MS_NOEXEC, 0}, {"exec", 0, unix.MS_NOEXEC},
	{"noatime", unix.MS_NOATIME, unix.MS_RELATIME | unix.MS_STRICTATIME},
	{"relatime", unix.MS_RELATIME, unix.MS_NOATIME | unix.MS_STRICTATIME},
	{"strictatime", unix.MS_STRICTATIME, unix.MS_NOATIME | unix.MS_RELATIME},
	{"nodiratime", unix.MS_NODIRATIME, 0},
}

const defaultVFSFlags = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_RELATIME

// processOfThread is the process (thread group) that thread tid belongs
// to, read from /proc in our PID namespace; 0 if it is gone.
func processOfThread(tid uint32) uint32 {
	status, err := os.ReadFile("/proc/" + strconv.FormatUint(uint64(tid), 10) + "/status")
	if err != nil {
		return 0
	}
	_, rest, ok := strings.Cut(string(status), "\nTgid:")
	if !ok {
		return 0
	}
	line, _, _ := strings.Cut(rest, "\n")
	tgid, err := strconv.ParseUint(strings.TrimSpace(line), 10, 32)
	if err != nil {
		return 0
	}
	return uint32(tgid)
}
