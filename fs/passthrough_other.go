//go:build !linux

package fs

import (
	"os"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// FUSE passthrough is Linux's.
func registerBacking(*fuse.Server, *os.File) (int32, syscall.Errno) { return 0, syscall.ENOSYS }

func unregisterBacking(*fuse.Server, int32) syscall.Errno { return syscall.ENOSYS }

const oDirect = 0 // no FUSE passthrough to keep it from
