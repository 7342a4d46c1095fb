package proc

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// stat is what spoolfs reads of /proc/PID/stat.
type stat struct {
	state byte   // R, S, D, Z, ...
	ppid  int    // the parent, in our PID namespace (0 if outside it)
	start string // start time in clock ticks since boot: changes if the PID is reused
}

var errUnreadable = errors.New("unreadable /proc stat")

// readStat parses /proc/PID/stat. The command name, in parentheses, may
// hold spaces and parentheses of its own: the fields that follow it start
// after the last ')'.
func readStat(pid int) (stat, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return stat{}, syscall.ESRCH
	}
	return parseStat(string(data))
}

func parseStat(data string) (stat, error) {
	i := strings.LastIndexByte(data, ')')
	if i < 0 {
		return stat{}, errUnreadable
	}
	// state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt
	// cmajflt utime stime cutime cstime priority nice num_threads
	// itrealvalue starttime ...
	fields := strings.Fields(data[i+1:])
	if len(fields) < 20 || len(fields[0]) != 1 {
		return stat{}, errUnreadable
	}
	ppid, err := strconv.Atoi(fields[1])
	if err != nil {
		return stat{}, errUnreadable
	}
	return stat{state: fields[0][0], ppid: ppid, start: fields[19]}, nil
}

// Alive reports whether pid is a process that has not exited.
func Alive(pid int) bool {
	st, err := readStat(pid)
	return err == nil && st.state != 'Z'
}

// Parent returns pid's parent.
func Parent(pid int) (int, error) {
	st, err := readStat(pid)
	if err != nil {
		return 0, err
	}
	return st.ppid, nil
}

// startToken returns a token that changes if pid is reused, or ESRCH if
// pid is gone.
func startToken(pid int) (string, error) {
	st, err := readStat(pid)
	if err != nil || st.state == 'Z' {
		return "", syscall.ESRCH
	}
	return st.start, nil
}

// SameNamespace reports whether pid is in the daemon's PID namespace.
func SameNamespace(pid int) bool {
	theirs, err1 := os.Readlink("/proc/" + strconv.Itoa(pid) + "/ns/pid")
	ours, err2 := os.Readlink("/proc/self/ns/pid")
	return err1 == nil && err2 == nil && theirs == ours
}

// ThreadGroup returns the process (thread group) that thread tid belongs
// to; 0 if it is gone. FUSE names the calling thread, not its process.
func ThreadGroup(tid uint32) uint32 {
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

// Command returns pid's command name (comm: at most 15 bytes).
func Command(pid int) (string, error) {
	comm, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	if err != nil {
		return "", syscall.ESRCH
	}
	return strings.TrimSuffix(string(comm), "\n"), nil
}

// Args returns pid's command line.
func Args(pid int) ([]string, error) {
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return nil, syscall.ESRCH
	}
	return strings.Split(strings.TrimSuffix(string(cmdline), "\x00"), "\x00"), nil
}
