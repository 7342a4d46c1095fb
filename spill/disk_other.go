//go:build !linux

package spill

import (
	"math/rand/v2"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// openUnnamed creates a file in the directory dirfd and removes its name
// at once: there is no O_TMPFILE here, so a crash between the two calls can
// leave one empty file.
func openUnnamed(dirfd int) (int, error) {
	for range 100 {
		name := "spill-" + strconv.FormatUint(rand.Uint64(), 36)
		fd, err := ignoringEINTR(func() (int, error) {
			return unix.Openat(dirfd, name, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		})
		if err == unix.EEXIST {
			continue
		}
		if err != nil {
			return -1, err
		}
		if err := unix.Unlinkat(dirfd, name, 0); err != nil {
			unix.Close(fd)
			return -1, err
		}
		return fd, nil
	}
	return -1, unix.EEXIST
}

// fallocate writes zeros where it must allocate and cannot punch holes:
// the page accounting stays exact, the disk may hold more than it needs.
func fallocate(f *os.File, mode uint32, off, length int64) error {
	if mode&fallocPunchHole != 0 {
		_, err := f.WriteAt(make([]byte, length), off)
		return err
	}
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if mode&fallocKeepSize == 0 && off+length > st.Size() {
		return f.Truncate(off + length)
	}
	return nil
}
