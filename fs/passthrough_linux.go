package fs

import (
	"os"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
)

func registerBacking(s *fuse.Server, backing *os.File) (int32, syscall.Errno) {
	return s.RegisterBackingFd(&fuse.BackingMap{Fd: int32(backing.Fd())})
}

func unregisterBacking(s *fuse.Server, id int32) syscall.Errno {
	return s.UnregisterBackingFd(id)
}

const oDirect = syscall.O_DIRECT
