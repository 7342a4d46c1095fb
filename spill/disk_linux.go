package spill

import (
	"os"

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
