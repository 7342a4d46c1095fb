package main

import (
	"errors"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// lockMountParent takes an exclusive flock(2) on the directory that holds
// dir and returns what releases it (once, however often it is called).
// Held from the check that dir is free until dir is mounted, it keeps two
// 'spoolfs mount' of one directory at once from both finding it free and
// stacking: the second waits, then finds the first mounted. The lock is on
// the parent because dir may be a dead mount, which cannot be opened; it
// needs no file of its own and goes away with the process. Where the parent
// cannot be opened or locked (no read permission), the mount goes on
// unlocked, as it did before there was a lock.
func lockMountParent(dir string) func() {
	f, err := os.Open(filepath.Dir(dir))
	if err != nil {
		return func() {}
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return func() {}
	}
	return sync.OnceFunc(func() { f.Close() })
}
