//go:build !linux

package spill

import (
	"os"

	"golang.org/x/sys/unix"
)

// newDiskFile creates a file and removes its name at once: there is no
// O_TMPFILE here, so a crash between the two calls can leave one empty file.
func newDiskFile(dir string) (*diskFile, error) {
	f, err := os.CreateTemp(dir, "spill-")
	if err != nil {
		return nil, err
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, err
	}
	return &diskFile{f: f}, nil
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

func processAlive(pid int) bool {
	err := unix.Kill(pid, 0)
	return err == nil || err == unix.EPERM
}
