package fs

import (
	"context"
	"slices"
	"strings"
	"syscall"
	"unsafe"

	"github.com/spoolfs/spoolfs/fs/control"
)

// Limits on one inode's extended attributes. The first two are Linux's own,
// which the kernel checks before a request reaches us; they are checked
// again for the platforms that do not.
const (
	maxXattrName  = 255      // XATTR_NAME_MAX: ERANGE past it
	maxXattrValue = 64 << 10 // XATTR_SIZE_MAX: E2BIG past it
	// maxXattrNames bounds the list of names (each with its NUL) so that
	// listxattr can return it whole: the kernel takes at most 64 KiB
	// (XATTR_LIST_MAX), and the control attributes listed on sessions and
	// the root need room beside it. ENOSPC past it.
	maxXattrNames = 63 << 10
	// maxXattrBytes caps the names and values of one inode, so that one
	// file cannot take a whole quota's worth of RAM in attributes that
	// every listxattr and setxattr of it walks. ENOSPC past it.
	maxXattrBytes = 1 << 20
)

const (
	xattrCreate  = 0x1 // XATTR_CREATE
	xattrReplace = 0x2 // XATTR_REPLACE
)

// xattrNamespace checks a name the way tmpfs does: of system.* it stores
// the ACLs only, and only where the kernel enforces them (the kernel has
// already checked who may use trusted.*); EINVAL for a namespace with
// nothing after it.
func xattrNamespace(name string) syscall.Errno {
	if name == aclAccessName || name == aclDefaultName {
		if posixACLs {
			return 0
		}
		return syscall.EOPNOTSUPP
	}
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

// xattr is one extended attribute.
type xattr struct {
	name  string
	value []byte
}

// xattrList is a node's extended attributes, sorted by name. It is a slice
// and not a map so that what it holds is known (see held) and shrinks when
// attributes go: a Go map never gives back the room of deleted entries,
// which would let a user grow the daemon, uncharged, by setting and
// removing attributes on many files.
type xattrList []xattr

// xattrSlot is what one entry takes in the list's array.
const xattrSlot = int64(unsafe.Sizeof(xattr{}))

// nameHeld is what the allocator takes for a name of up to 255 bytes: its
// size classes step by at most 16 bytes up to 256.
func nameHeld(name string) int64 { return roundUp(int64(len(name)), 16) }

func (l xattrList) find(name string) (int, bool) {
	return slices.BinarySearchFunc(l, name, func(x xattr, name string) int { return strings.Compare(x.name, name) })
}

// sizes returns the bytes of names and values, and the length of the list
// of names listxattr returns.
func (l xattrList) sizes() (total, names int) {
	for _, x := range l {
		total += len(x.name) + len(x.value)
		names += len(x.name) + 1
	}
	return total, names
}

func (a *attrs) Getxattr(ctx context.Context, name string, dest []byte) (uint32, syscall.Errno) {
	a.xmu.Lock()
	defer a.xmu.Unlock()
	i, ok := a.xattrs.find(name)
	if !ok {
		return 0, control.ErrNoAttr
	}
	v := a.xattrs[i].value
	if len(dest) < len(v) {
		return uint32(len(v)), syscall.ERANGE
	}
	return uint32(copy(dest, v)), 0
}

// Setxattr stores a value, charging the node's account and the RAM budget
// for the memory it takes beforehand: a refusal stores nothing, and a
// replaced value is charged only the difference. An ACL is checked, and
// the access ACL changes the mode as well (acl.go).
func (a *attrs) Setxattr(ctx context.Context, name string, data []byte, flags uint32) syscall.Errno {
	switch {
	case len(name) > maxXattrName:
		return syscall.ERANGE
	case len(data) > maxXattrValue:
		return syscall.E2BIG
	}
	if errno := xattrNamespace(name); errno != 0 {
		return errno
	}
	// Copies of our own, made by append so that their capacity is what
	// the allocator took, which is what they are charged.
	name, value := strings.Clone(name), append([]byte(nil), data...)
	a.xmu.Lock()
	defer a.xmu.Unlock()
	if a.metaGone {
		return syscall.ENOENT // freed: no name and no handle left
	}
	switch name {
	case aclAccessName:
		return a.setAccessACLLocked(ctx, value, flags)
	case aclDefaultName:
		if _, errno := parseACL(value); errno != 0 {
			return errno
		}
		if !a.isDir() {
			return syscall.EACCES // what the kernel answers for a file
		}
	}
	return a.setLocked(name, value, flags)
}

// setLocked stores a value whose name and value the node owns.
func (a *attrs) setLocked(name string, value []byte, flags uint32) syscall.Errno {
	i, exists := a.xattrs.find(name)
	switch {
	case flags&xattrCreate != 0 && exists:
		return syscall.EEXIST
	case flags&xattrReplace != 0 && !exists:
		return control.ErrNoAttr
	}
	total, names := a.xattrs.sizes()
	list := a.xattrs
	held := a.metaHeld + int64(cap(value))
	if exists {
		total += len(value) - len(list[i].value)
		held -= int64(cap(list[i].value))
	} else {
		total += len(name) + len(value)
		names += len(name) + 1
		// A full array is copied into a larger one, and the old one is
		// left as it was until the charge is granted.
		list = slices.Grow(list, 1)
		held += nameHeld(name) + int64(cap(list)-cap(a.xattrs))*xattrSlot
	}
	if total > maxXattrBytes || names > maxXattrNames {
		return syscall.ENOSPC
	}
	if errno := a.rechargeLocked(held); errno != 0 {
		return errno
	}
	if exists {
		list[i].value = value
	} else {
		list = slices.Insert(list, i, xattr{name, value})
	}
	a.xattrs = list
	a.touchChange()
	return 0
}

func (a *attrs) Removexattr(ctx context.Context, name string) syscall.Errno {
	a.xmu.Lock()
	defer a.xmu.Unlock()
	if !a.removeLocked(name) {
		return control.ErrNoAttr
	}
	a.touchChange()
	return 0
}

// removeLocked removes name if the node has it, and says whether it had.
func (a *attrs) removeLocked(name string) bool {
	i, ok := a.xattrs.find(name)
	if !ok {
		return false
	}
	held := a.metaHeld - nameHeld(name) - int64(cap(a.xattrs[i].value))
	list := slices.Delete(a.xattrs, i, i+1)
	if len(list) <= cap(list)/4 {
		// Give back most of the array; nil once empty, as a slice of
		// none would still hold the old array.
		if len(list) == 0 {
			list = nil
		} else {
			list = slices.Clone(list)
		}
		held -= int64(cap(a.xattrs)-cap(list)) * xattrSlot
	}
	a.xattrs = list
	a.rechargeLocked(held) // gives back: cannot fail
	return true
}

// Listxattr writes the names, each NUL-terminated, in a stable order.
func (a *attrs) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	a.xmu.Lock()
	defer a.xmu.Unlock()
	_, size := a.xattrs.sizes()
	if len(dest) < size {
		return uint32(size), syscall.ERANGE
	}
	off := 0
	for _, x := range a.xattrs {
		off += copy(dest[off:], x.name)
		dest[off] = 0
		off++
	}
	return uint32(size), 0
}
