package spill

import (
	"bytes"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// openUnnamed opens a file in the directory dirfd that never has a name:
// if the process dies, the kernel frees its blocks and nothing is left in
// the spill directory.
func openUnnamed(dirfd int) (int, error) {
	return ignoringEINTR(func() (int, error) {
		return unix.Openat(dirfd, ".", unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
	})
}

func fallocate(f *os.File, mode uint32, off, length int64) error {
	for {
		err := unix.Fallocate(int(f.Fd()), mode, off, length)
		if err != unix.EINTR {
			return err
		}
	}
}

// processAlive: a zombie is dead for our purpose, since its spill files
// are closed, and a killed daemon whose parent has gone may stay one.
func processAlive(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses.
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) {
		return stat[i+2] != 'Z'
	}
	return true
}
