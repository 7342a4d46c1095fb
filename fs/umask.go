package fs

import (
	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// RawFS returns the tree as go-fuse's raw filesystem, to serve with
// fuse.NewServer and opts.MountOptions (opts being what Options returned,
// adjusted). It is what gofs.Mount would serve, except that the kernel
// leaves the creator's umask to us: POSIX wants a new node's permissions
// cut by its directory's default ACL instead of the umask where there is
// one, and go-fuse hands a node the mode but not the umask. Mounted with
// gofs.Mount instead, the kernel applies the umask even then.
func (f *FS) RawFS(opts *gofs.Options) fuse.RawFileSystem {
	opts.ExtraCapabilities |= dontMask
	return &umasker{RawFileSystem: gofs.NewNodeFS(f.root, opts), fsys: f}
}

// umasker applies the umask to the mode of a node being made, unless its
// directory has a default ACL, before the node code sees it.
// It also learns the server, and puts the backing id of a passthrough
// open in its reply (passthrough.go).
type umasker struct {
	fuse.RawFileSystem
	fsys *FS
}

func (u *umasker) Init(s *fuse.Server) {
	u.fsys.pt.server.Store(s)
	u.RawFileSystem.Init(s)
}

func (u *umasker) Open(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	st := u.RawFileSystem.Open(cancel, in, out)
	if id, ok := u.fsys.pt.ids.LoadAndDelete(cancel); ok && st == fuse.OK {
		out.BackingID = id.(int32)
		out.OpenFlags |= fuse.FOPEN_PASSTHROUGH
	}
	return st
}

func (u *umasker) Mkdir(cancel <-chan struct{}, in *fuse.MkdirIn, name string, out *fuse.EntryOut) fuse.Status {
	in.Mode = u.mask(cancel, &in.InHeader, in.Mode, in.Umask)
	return u.RawFileSystem.Mkdir(cancel, in, name, out)
}

func (u *umasker) Mknod(cancel <-chan struct{}, in *fuse.MknodIn, name string, out *fuse.EntryOut) fuse.Status {
	in.Mode = u.mask(cancel, &in.InHeader, in.Mode, in.Umask)
	return u.RawFileSystem.Mknod(cancel, in, name, out)
}

func (u *umasker) Create(cancel <-chan struct{}, in *fuse.CreateIn, name string, out *fuse.CreateOut) fuse.Status {
	in.Mode = u.mask(cancel, &in.InHeader, in.Mode, in.Umask)
	return u.RawFileSystem.Create(cancel, in, name, out)
}

func (u *umasker) Tmpfile(cancel <-chan struct{}, in *fuse.CreateIn, out *fuse.CreateOut) fuse.Status {
	in.Mode = u.mask(cancel, &in.InHeader, in.Mode, in.Umask)
	return u.RawFileSystem.Tmpfile(cancel, in, out)
}

// mask returns mode cut by umask, or mode itself if the directory the
// request is made in (in.NodeId) has a default ACL: asked with no room for
// the value, the answer is ERANGE if it has one. The kernel holds the
// directory's lock, so the ACL cannot change before the node is made.
func (u *umasker) mask(cancel <-chan struct{}, in *fuse.InHeader, mode, umask uint32) uint32 {
	_, st := u.RawFileSystem.GetXAttr(cancel, in, aclDefaultName, nil)
	if st == fuse.ERANGE || st == fuse.OK {
		return mode
	}
	return mode &^ (umask & 0o777)
}
