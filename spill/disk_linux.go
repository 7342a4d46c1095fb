package spill

import (
	"os"

	"golang.org/x/sys/unix"
)

// newDiskFile opens a file that never has a name: if the process dies, the
// kernel frees its blocks and nothing is left in the spill directory.
func newDiskFile(dir string) (*diskFile, error) {
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, &os.PathError{Op: "open O_TMPFILE", Path: dir, Err: err}
	}
	return &diskFile{f: os.NewFile(uintptr(fd), dir+"/(unnamed)")}, nil
}

func fallocate(f *os.File, mode uint32, off, length int64) error {
	for {
		err := unix.Fallocate(int(f.Fd()), mode, off, length)
		if err != unix.EINTR {
			return err
		}
	}
}

func processAlive(pid int) bool {
	err := unix.Kill(pid, 0)
	return err == nil || err == unix.EPERM
}
