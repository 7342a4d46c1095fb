package fs

import (
	"context"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// node is what every node kind in the tree offers the directory code.
type node interface {
	gofs.InodeEmbedder
	meta() *attrs
	// dropLink removes one name of the node; when none is left the node
	// frees what it holds (for a file: once it is also closed).
	dropLink()
	// endOfSession drops every name at once: its session has ended.
	endOfSession()
}

// unregister takes the node out of its session's register once freed.
func (a *attrs) unregister() {
	if s := a.sess; s != nil {
		s.unregister(a.ino)
	}
}

// Statfs reports the figures of the account the node is charged to: inside
// a session, df shows the session's limits and use.
func (a *attrs) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	a.fsys.statfs(a.acct, out)
	return 0
}

func (a *attrs) meta() *attrs { return a }

// dropLinkShared is dropLink for nodes that hold nothing but their inode;
// all drops every name at once.
func dropLinkShared(in *gofs.Inode, a *attrs, all bool) {
	a.mu.Lock()
	if a.nlink == 0 {
		a.mu.Unlock()
		return
	}
	a.nlink--
	if all {
		a.nlink = 0
	}
	a.ctime = a.fsys.now()
	gone := a.nlink == 0
	a.mu.Unlock()
	if gone {
		a.charge.ReleaseInodes(1)
		a.freeMeta()
		a.unregister()
		in.ForgetPersistent()
	}
}

// getattrShared fills out for nodes whose size the attrs alone determine.
func getattrShared(a *attrs, size uint64, out *fuse.AttrOut) {
	a.mu.Lock()
	a.fillAttrLocked(&out.Attr)
	a.mu.Unlock()
	out.Size = size
}

func setattrShared(a *attrs, in *fuse.SetAttrIn, size uint64, out *fuse.AttrOut) syscall.Errno {
	if _, ok := in.GetSize(); ok {
		return syscall.EINVAL
	}
	unlock := a.lockForSetattr(in)
	errno := a.setattrLocked(in)
	a.fillAttrLocked(&out.Attr)
	unlock()
	out.Size = size
	return errno
}

// symlinkNode is a symbolic link; its target is fixed at creation, and
// charged as the node's metadata (see meta.go).
type symlinkNode struct {
	gofs.Inode
	attrs
	target []byte
}

var (
	_ gofs.NodeGetattrer  = (*symlinkNode)(nil)
	_ gofs.NodeSetattrer  = (*symlinkNode)(nil)
	_ gofs.NodeReadlinker = (*symlinkNode)(nil)
)

func (n *symlinkNode) Getattr(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	getattrShared(&n.attrs, uint64(len(n.target)), out)
	return 0
}

func (n *symlinkNode) Setattr(ctx context.Context, f gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	return setattrShared(&n.attrs, in, uint64(len(n.target)), out)
}

func (n *symlinkNode) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	return n.target, 0
}

func (n *symlinkNode) dropLink()     { dropLinkShared(&n.Inode, &n.attrs, false) }
func (n *symlinkNode) endOfSession() { dropLinkShared(&n.Inode, &n.attrs, true) }

// specialNode is a FIFO, a UNIX socket or a device node: the kernel serves
// its I/O, spoolfs only keeps its name and attributes.
type specialNode struct {
	gofs.Inode
	attrs
}

var (
	_ gofs.NodeGetattrer = (*specialNode)(nil)
	_ gofs.NodeSetattrer = (*specialNode)(nil)
)

func (n *specialNode) Getattr(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	getattrShared(&n.attrs, 0, out)
	return 0
}

func (n *specialNode) Setattr(ctx context.Context, f gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	return setattrShared(&n.attrs, in, 0, out)
}

func (n *specialNode) dropLink()     { dropLinkShared(&n.Inode, &n.attrs, false) }
func (n *specialNode) endOfSession() { dropLinkShared(&n.Inode, &n.attrs, true) }
