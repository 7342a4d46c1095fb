package fs

import (
	"context"
	"slices"
	"strings"
	"syscall"
)

// maxXattrBytes caps the names and values one inode may hold, so that
// extended attributes cannot be used to fill the daemon's memory outside
// the byte quota.
const maxXattrBytes = 1 << 20

const (
	xattrCreate  = 0x1 // XATTR_CREATE
	xattrReplace = 0x2 // XATTR_REPLACE
)

// xattrNamespace checks a name the way tmpfs does: the namespaces it
// stores (system.*, ACLs, is not supported; the kernel has already checked
// who may use trusted.*), EINVAL for a namespace with nothing after it.
func xattrNamespace(name string) syscall.Errno {
	for _, ns := range []string{"user.", "trusted.", "security."} {
		if strings.HasPrefix(name, ns) {
			if len(name) == len(ns) {
				return syscall.EINVAL
			}
			return 0
		}
	}
	return syscall.EOPNOTSUPP
}

func (a *attrs) Getxattr(ctx context.Context, name string, dest []byte) (uint32, syscall.Errno) {
	a.mu.Lock()
	defer a.mu.Unlock()
	v, ok := a.xattrs[name]
	if !ok {
		return 0, errNoAttr
	}
	if len(dest) < len(v) {
		return uint32(len(v)), syscall.ERANGE
	}
	return uint32(copy(dest, v)), 0
}

func (a *attrs) Setxattr(ctx context.Context, name string, data []byte, flags uint32) syscall.Errno {
	if errno := xattrNamespace(name); errno != 0 {
		return errno
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	old, exists := a.xattrs[name]
	switch {
	case flags&xattrCreate != 0 && exists:
		return syscall.EEXIST
	case flags&xattrReplace != 0 && !exists:
		return errNoAttr
	}
	total := len(data) - len(old)
	if !exists {
		total += len(name)
	}
	for k, v := range a.xattrs {
		total += len(k) + len(v)
	}
	if total > maxXattrBytes {
		return syscall.ENOSPC
	}
	if a.xattrs == nil {
		a.xattrs = make(map[string][]byte)
	}
	a.xattrs[name] = slices.Clone(data)
	a.ctime = a.fsys.now()
	return 0
}

func (a *attrs) Removexattr(ctx context.Context, name string) syscall.Errno {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.xattrs[name]; !ok {
		return errNoAttr
	}
	delete(a.xattrs, name)
	a.ctime = a.fsys.now()
	return 0
}

// Listxattr writes the names, each NUL-terminated, in a stable order.
func (a *attrs) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	a.mu.Lock()
	names := make([]string, 0, len(a.xattrs))
	for k := range a.xattrs {
		names = append(names, k)
	}
	a.mu.Unlock()
	slices.Sort(names)
	size := 0
	for _, n := range names {
		size += len(n) + 1
	}
	if len(dest) < size {
		return uint32(size), syscall.ERANGE
	}
	off := 0
	for _, n := range names {
		off += copy(dest[off:], n)
		dest[off] = 0
		off++
	}
	return uint32(size), 0
}
