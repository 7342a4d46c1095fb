package fs

import (
	"context"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
)

const (
	renameNoReplace = 0x1 // RENAME_NOREPLACE
	renameExchange  = 0x2 // RENAME_EXCHANGE
	renameWhiteout  = 0x4 // RENAME_WHITEOUT
)

// Rename moves name to newName in newParent. go-fuse moves the entries in
// its tree once this returns 0; here we check the rules the VFS leaves to
// the filesystem, drop a replaced target and fix link counts and times.
// The kernel holds the rename lock, so the tree does not change under us.
func (n *dirNode) Rename(ctx context.Context, name string, newParent gofs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	dp, ok := newParent.(directory)
	if !ok {
		return syscall.EXDEV
	}
	dst := dp.dir()
	if flags&renameWhiteout != 0 || flags&^(renameNoReplace|renameExchange) != 0 {
		return syscall.EINVAL
	}
	if errno := checkName(newName); errno != 0 {
		return errno
	}
	srcInode := n.child(name)
	if srcInode == nil {
		return syscall.ENOENT
	}
	src := srcInode.Operations().(node)
	if !sameTree(src, n, dst) {
		return syscall.EXDEV
	}
	leave, errno := src.meta().enter()
	if errno != 0 {
		return errno
	}
	defer leave()
	target := dst.child(newName)
	if flags&renameExchange != 0 {
		return n.exchange(srcInode, dst, target)
	}
	if target != nil {
		if flags&renameNoReplace != 0 {
			return syscall.EEXIST
		}
		if target == srcInode {
			return 0
		}
		if errno := checkReplace(srcInode, target); errno != 0 {
			return errno
		}
	}
	if srcInode.IsDir() && n != dst {
		n.adjustNlink(-1)
		dst.adjustNlink(+1)
	}
	if target != nil {
		if target.IsDir() {
			dst.adjustNlink(-1)
		}
		target.Operations().(node).dropLink()
	}
	n.touchTimes()
	dst.touchTimes()
	src.meta().touchChange()
	return 0
}

// sameTree says whether src may move from dir from to dir to: only within
// one account (a session, or the root level), like a rename within one
// filesystem. Sessions themselves may be renamed within the root.
func sameTree(src node, from, to *dirNode) bool {
	if _, isSession := src.(*sessionDir); isSession {
		return from == to
	}
	return src.meta().acct == to.childAccount()
}

// checkReplace applies the rules for renaming src over an existing target.
func checkReplace(src, target *gofs.Inode) syscall.Errno {
	switch {
	case src.IsDir() && !target.IsDir():
		return syscall.ENOTDIR
	case !src.IsDir() && target.IsDir():
		return syscall.EISDIR
	case target.IsDir() && len(target.Children()) > 0:
		return syscall.ENOTEMPTY
	}
	return 0
}

// exchange swaps two entries (RENAME_EXCHANGE); both must exist.
func (n *dirNode) exchange(src *gofs.Inode, dst *dirNode, target *gofs.Inode) syscall.Errno {
	if target == nil {
		return syscall.ENOENT
	}
	if !sameTree(target.Operations().(node), dst, n) {
		return syscall.EXDEV
	}
	if n != dst && src.IsDir() != target.IsDir() {
		delta := int32(1)
		if src.IsDir() {
			delta = -1
		}
		n.adjustNlink(delta)
		dst.adjustNlink(-delta)
	}
	n.touchTimes()
	dst.touchTimes()
	src.Operations().(node).meta().touchChange()
	target.Operations().(node).meta().touchChange()
	return 0
}

func (n *dirNode) adjustNlink(delta int32) {
	n.mu.Lock()
	n.nlink = uint32(int32(n.nlink) + delta)
	n.mu.Unlock()
}
