package fs

import (
	"context"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/spoolfs/spoolfs/quota"
)

// dirNode is a directory. Its entries are go-fuse's in-memory children;
// readdir lists a snapshot taken at opendir, which is what keeps it stable
// while entries come and go.
type dirNode struct {
	gofs.Inode
	attrs
}

var (
	_ gofs.NodeGetattrer = (*dirNode)(nil)
	_ gofs.NodeSetattrer = (*dirNode)(nil)
	_ gofs.NodeStatfser  = (*dirNode)(nil)
	_ gofs.NodeLookuper  = (*dirNode)(nil)
	_ gofs.NodeOpendirer = (*dirNode)(nil)
	_ gofs.NodeCreater   = (*dirNode)(nil)
	_ gofs.NodeMkdirer   = (*dirNode)(nil)
	_ gofs.NodeMknoder   = (*dirNode)(nil)
	_ gofs.NodeSymlinker = (*dirNode)(nil)
	_ gofs.NodeLinker    = (*dirNode)(nil)
	_ gofs.NodeUnlinker  = (*dirNode)(nil)
	_ gofs.NodeRmdirer   = (*dirNode)(nil)
	_ gofs.NodeRenamer   = (*dirNode)(nil)
	_ gofs.NodeFsyncer   = (*dirNode)(nil)
)

// directory is what every directory kind (plain, session, root) offers.
type directory interface {
	node
	dir() *dirNode
}

func (n *dirNode) dir() *dirNode { return n }

const dirSize = 4096

func (n *dirNode) Getattr(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	getattrShared(&n.attrs, dirSize, out)
	return 0
}

func (n *dirNode) Setattr(ctx context.Context, f gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	n.active()
	return setattrShared(&n.attrs, in, dirSize, out)
}

// child returns the entry name, or nil. Entries of a session that has
// ended are gone, even if go-fuse's tree still shows them: a lookup that
// raced the end can put a session back into the root after the end took
// it out, and entries made just before the end are added after it.
func (n *dirNode) child(name string) *gofs.Inode {
	if s := n.sess; s != nil && s.ended.Load() {
		return nil
	}
	ch := n.GetChild(name)
	if ch == nil {
		return nil
	}
	if sd, ok := ch.Operations().(*sessionDir); ok && sd.s.ended.Load() {
		n.RmChild(name)
		return nil
	}
	return ch
}

// Lookup is what go-fuse would do for an in-memory tree, plus counting the
// lookup as activity in the session.
func (n *dirNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	n.active()
	if errno := checkName(name); errno != 0 {
		return nil, errno
	}
	ch := n.child(name)
	if ch == nil {
		return nil, syscall.ENOENT
	}
	if g, ok := ch.Operations().(gofs.NodeGetattrer); ok {
		var ao fuse.AttrOut
		g.Getattr(ctx, nil, &ao)
		out.Attr = ao.Attr
	}
	return ch, 0
}

func (n *dirNode) Opendir(ctx context.Context) syscall.Errno {
	n.active()
	return 0
}

// Fsync of a directory has nothing to make durable, as for files (see
// fileNode.Fsync); it succeeds, as on tmpfs, so that write, rename,
// fsync(dir) code works.
func (n *dirNode) Fsync(ctx context.Context, f gofs.FileHandle, flags uint32) syscall.Errno {
	return 0
}

// childAccount is the account a new entry of n is charged to.
func (n *dirNode) childAccount() *quota.Account { return n.acct }

// childCharge is what a new entry of n made in ctx is charged to: n's
// account and the caller, who will own it.
func (n *dirNode) childCharge(ctx context.Context) *quota.Charge {
	return n.fsys.users.Charge(n.childAccount(), callerUID(ctx))
}

// maxNameLen is NAME_MAX, what tmpfs allows and statfs reports: the
// kernel lets FUSE names grow to 1024 bytes, so we must refuse longer
// ones, in a lookup too (ENAMETOOLONG, not ENOENT).
const maxNameLen = 255

func checkName(name string) syscall.Errno {
	if len(name) > maxNameLen {
		return syscall.ENAMETOOLONG
	}
	return 0
}

// addEntry charges one inode for a new entry and bumps n's times; the
// caller then builds the node. It fails with EEXIST if the name is taken.
func (n *dirNode) addEntry(name string, charge *quota.Charge) syscall.Errno {
	if errno := checkName(name); errno != 0 {
		return errno
	}
	if n.child(name) != nil {
		return syscall.EEXIST
	}
	if err := charge.ReserveInodes(1); err != nil {
		return n.fsys.toErrno("create", err)
	}
	n.touchTimes()
	return 0
}

func (n *dirNode) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	leave, errno := n.enter()
	if errno != 0 {
		return nil, nil, 0, errno
	}
	defer leave()
	charge := n.childCharge(ctx)
	inh, mode, errno := n.inherit(charge, syscall.S_IFREG|mode&07777)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	if errno := n.addEntry(name, charge); errno != 0 {
		inh.release(n.fsys, charge)
		return nil, nil, 0, errno
	}
	file := n.fsys.newFile(ctx, n, mode, charge, inh)
	h, fopen := file.open(flags)
	ch := n.NewPersistentInode(ctx, file, gofs.StableAttr{Mode: syscall.S_IFREG, Ino: file.ino})
	file.fillEntry(out)
	return ch, h, fopen, 0
}

func (n *dirNode) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	leave, errno := n.enter()
	if errno != 0 {
		return nil, errno
	}
	defer leave()
	charge := n.childCharge(ctx)
	inh, mode, errno := n.inherit(charge, syscall.S_IFDIR|mode&07777)
	if errno != 0 {
		return nil, errno
	}
	if errno := n.addEntry(name, charge); errno != 0 {
		inh.release(n.fsys, charge)
		return nil, errno
	}
	dir := &dirNode{}
	n.fsys.initAttrs(&dir.attrs, ctx, n, mode, charge)
	dir.adopt(inh)
	dir.nlink = 2
	n.adjustNlink(+1)
	return n.addNode(ctx, dir, out), 0
}

func (n *dirNode) Mknod(ctx context.Context, name string, mode, rdev uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	leave, errno := n.enter()
	if errno != 0 {
		return nil, errno
	}
	defer leave()
	charge := n.childCharge(ctx)
	switch mode & syscall.S_IFMT {
	case syscall.S_IFIFO, syscall.S_IFSOCK, syscall.S_IFCHR, syscall.S_IFBLK:
	case 0: // mknod(2) of a regular file: an empty file
		mode |= syscall.S_IFREG
	case syscall.S_IFREG:
	default:
		return nil, syscall.EINVAL
	}
	inh, mode, errno := n.inherit(charge, mode)
	if errno != 0 {
		return nil, errno
	}
	if errno := n.addEntry(name, charge); errno != 0 {
		inh.release(n.fsys, charge)
		return nil, errno
	}
	var nd node
	if mode&syscall.S_IFMT == syscall.S_IFREG {
		nd = n.fsys.newFile(ctx, n, mode, charge, inh)
	} else {
		sp := &specialNode{}
		n.fsys.initAttrs(&sp.attrs, ctx, n, mode, charge)
		sp.adopt(inh)
		sp.rdev = rdev
		nd = sp
	}
	return n.addNode(ctx, nd, out), 0
}

func (n *dirNode) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	leave, errno := n.enter()
	if errno != 0 {
		return nil, errno
	}
	defer leave()
	nodeCharge := n.childCharge(ctx)
	if errno := checkName(name); errno != 0 {
		return nil, errno
	}
	// The target is charged like an extended attribute, by what the
	// allocator took for it (append rounds the capacity up to that).
	ln := &symlinkNode{target: append([]byte(nil), target...)}
	held := int64(cap(ln.target))
	charge := roundUp(held, metaUnit)
	if err := n.fsys.holdMeta(nodeCharge, charge); err != nil {
		return nil, n.fsys.toErrno("symlink", err)
	}
	if errno := n.addEntry(name, nodeCharge); errno != 0 {
		n.fsys.releaseMeta(nodeCharge, charge)
		return nil, errno
	}
	n.fsys.initAttrs(&ln.attrs, ctx, n, syscall.S_IFLNK|0o777, nodeCharge)
	ln.metaHeld = held
	ln.metaCharged.Store(charge)
	return n.addNode(ctx, ln, out), 0
}

// addNode makes the persistent inode for a new node and fills out.
func (n *dirNode) addNode(ctx context.Context, nd node, out *fuse.EntryOut) *gofs.Inode {
	a := nd.meta()
	if s := a.sess; s != nil {
		s.register(nd)
	}
	ch := n.NewPersistentInode(ctx, nd, gofs.StableAttr{Mode: a.mode & syscall.S_IFMT, Ino: a.ino})
	fillEntryOut(ctx, nd, out)
	return ch
}

func fillEntryOut(ctx context.Context, nd gofs.InodeEmbedder, out *fuse.EntryOut) {
	var ao fuse.AttrOut
	if g, ok := nd.(gofs.NodeGetattrer); ok {
		g.Getattr(ctx, nil, &ao)
	}
	out.Attr = ao.Attr
}

func (n *dirNode) Link(ctx context.Context, target gofs.InodeEmbedder, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	nd, ok := target.(node)
	if !ok {
		return nil, syscall.EPERM
	}
	a := nd.meta()
	if a.acct != n.childAccount() {
		return nil, syscall.EXDEV
	}
	leave, errno := n.enter()
	if errno != 0 {
		return nil, errno
	}
	defer leave()
	if errno := checkName(name); errno != 0 {
		return nil, errno
	}
	if n.child(name) != nil {
		return nil, syscall.EEXIST
	}
	a.mu.Lock()
	if a.nlink == 0 && !linkableLocked(nd) {
		a.mu.Unlock()
		return nil, syscall.ENOENT
	}
	a.nlink++
	a.ctime = n.fsys.now()
	a.mu.Unlock()
	n.touchTimes()
	fillEntryOut(ctx, target, out)
	return target.EmbeddedInode(), 0
}

func (n *dirNode) Unlink(ctx context.Context, name string) syscall.Errno {
	leave, errno := n.enter()
	if errno != 0 {
		return errno
	}
	defer leave()
	ch := n.child(name)
	if ch == nil {
		return syscall.ENOENT
	}
	nd, ok := ch.Operations().(node)
	if !ok || ch.IsDir() {
		return syscall.EISDIR
	}
	n.touchTimes()
	nd.dropLink()
	return 0
}

func (n *dirNode) Rmdir(ctx context.Context, name string) syscall.Errno {
	leave, errno := n.enter()
	if errno != 0 {
		return errno
	}
	defer leave()
	ch := n.child(name)
	if ch == nil {
		return syscall.ENOENT
	}
	nd, ok := ch.Operations().(directory)
	if !ok {
		return syscall.ENOTDIR
	}
	if len(ch.Children()) > 0 {
		return syscall.ENOTEMPTY
	}
	n.touchTimes()
	n.adjustNlink(-1)
	nd.dropLink()
	return 0
}

// dropLink of a directory happens only when it is removed: it has one name.
func (n *dirNode) dropLink() { n.endOfSession() }

// endOfSession frees the directory's inode, once.
func (n *dirNode) endOfSession() {
	n.mu.Lock()
	gone := n.nlink == 0
	n.nlink = 0
	n.ctime = n.fsys.now()
	n.mu.Unlock()
	if gone {
		return
	}
	n.charge.ReleaseInodes(1)
	n.freeMeta()
	n.unregister()
	n.ForgetPersistent()
}

// linkableLocked: a node with no name may get one only if it is an
// O_TMPFILE file opened without O_EXCL and not yet freed.
func linkableLocked(nd node) bool {
	f, ok := nd.(*fileNode)
	return ok && f.linkable && !f.freed
}
