package fs

import (
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// Observer is told of events worth counting: the filesystem measures
// nothing on its own, and knows nothing of how the counts are kept. Its
// methods are called from FUSE requests and from the expiry loop, many at
// once: they must be quick, must not block, and must not call back into
// the filesystem.
type Observer interface {
	// SessionEnded is called once per session, when it ends, with one of
	// SessionEndReasons.
	SessionEnded(reason string)
	// Refused is called each time an operation is refused for want of
	// space: syscall.ENOSPC (the mount is full, or the spill disk) or
	// syscall.EDQUOT (a session's quota).
	Refused(errno syscall.Errno)
	// CacheFilled is called with the bytes of each piece of a file the
	// cacheFiller has stored in the kernel's page cache after a miss.
	CacheFilled(bytes int64)
}

// SessionEndReasons lists the reasons Observer.SessionEnded is given.
func SessionEndReasons() []string {
	return []string{reasonTTL, reasonIdle, reasonOwner, reasonRemoved}
}

// observerOr returns o, or one that ignores everything if o is nil.
func observerOr(o Observer) Observer {
	if o == nil {
		return nopObserver{}
	}
	return o
}

type nopObserver struct{}

func (nopObserver) SessionEnded(string)   {}
func (nopObserver) Refused(syscall.Errno) {}
func (nopObserver) CacheFilled(int64)     {}

// Op is a kind of FUSE request, named as in the kernel's protocol.
type Op uint8

const (
	opLookup Op = iota
	opForget
	opGetAttr
	opSetAttr
	opMknod
	opMkdir
	opUnlink
	opRmdir
	opRename
	opLink
	opSymlink
	opReadlink
	opAccess
	opGetXAttr
	opListXAttr
	opSetXAttr
	opRemoveXAttr
	opCreate
	opTmpfile
	opOpen
	opRead
	opLseek
	opGetLk
	opSetLk
	opSetLkw
	opRelease
	opWrite
	opCopyFileRange
	opIoctl
	opFlush
	opFsync
	opFallocate
	opOpenDir
	opReadDir
	opReadDirPlus
	opReleaseDir
	opFsyncDir
	opStatFs
	opStatx
	numOps
)

var opNames = [numOps]string{
	opLookup:        "LOOKUP",
	opForget:        "FORGET",
	opGetAttr:       "GETATTR",
	opSetAttr:       "SETATTR",
	opMknod:         "MKNOD",
	opMkdir:         "MKDIR",
	opUnlink:        "UNLINK",
	opRmdir:         "RMDIR",
	opRename:        "RENAME",
	opLink:          "LINK",
	opSymlink:       "SYMLINK",
	opReadlink:      "READLINK",
	opAccess:        "ACCESS",
	opGetXAttr:      "GETXATTR",
	opListXAttr:     "LISTXATTR",
	opSetXAttr:      "SETXATTR",
	opRemoveXAttr:   "REMOVEXATTR",
	opCreate:        "CREATE",
	opTmpfile:       "TMPFILE",
	opOpen:          "OPEN",
	opRead:          "READ",
	opLseek:         "LSEEK",
	opGetLk:         "GETLK",
	opSetLk:         "SETLK",
	opSetLkw:        "SETLKW",
	opRelease:       "RELEASE",
	opWrite:         "WRITE",
	opCopyFileRange: "COPY_FILE_RANGE",
	opIoctl:         "IOCTL",
	opFlush:         "FLUSH",
	opFsync:         "FSYNC",
	opFallocate:     "FALLOCATE",
	opOpenDir:       "OPENDIR",
	opReadDir:       "READDIR",
	opReadDirPlus:   "READDIRPLUS",
	opReleaseDir:    "RELEASEDIR",
	opFsyncDir:      "FSYNCDIR",
	opStatFs:        "STATFS",
	opStatx:         "STATX",
}

func (o Op) String() string {
	if o < numOps {
		return opNames[o]
	}
	return "UNKNOWN"
}

// Ops lists every kind of request ObserveOps reports, in a fixed order:
// Op values run from 0 to len(Ops())-1, so they can index a slice.
func Ops() []Op {
	ops := make([]Op, numOps)
	for i := range ops {
		ops[i] = Op(i)
	}
	return ops
}

// OpFunc is told of each request once it is answered: its kind, the thread
// that made it (its id in the mount's PID namespace; 0 for the kernel's own
// requests, such as FORGET), how long the filesystem took over it, and its
// status (fuse.OK or an errno). It is called from many goroutines at once
// and is on every request's path.
type OpFunc func(op Op, caller uint32, took time.Duration, status fuse.Status)

// ObserveOps wraps a go-fuse RawFileSystem, such as the one gofs.NewNodeFS
// returns, so that done is called after each request; requests and
// answers pass through unchanged. Mount it with fuse.NewServer. The
// methods that are not requests (String, SetDebug, Init, OnUnmount) pass
// through unobserved. RENAME and RENAME2 are both reported as RENAME;
// each node of a BATCH_FORGET as one FORGET.
func ObserveOps(raw fuse.RawFileSystem, done OpFunc) fuse.RawFileSystem {
	return &opObserver{RawFileSystem: raw, done: done}
}

// opObserver overrides every request method of fuse.RawFileSystem; the
// embedded interface supplies the rest.
type opObserver struct {
	fuse.RawFileSystem
	done OpFunc
}

func (o *opObserver) Lookup(cancel <-chan struct{}, header *fuse.InHeader, name string, out *fuse.EntryOut) fuse.Status {
	start := time.Now()
	st := o.RawFileSystem.Lookup(cancel, header, name, out)
	o.done(opLookup, header.Pid, time.Since(start), st)
	return st
}

func (o *opObserver) Forget(nodeid, nlookup uint64) {
	start := time.Now()
	o.RawFileSystem.Forget(nodeid, nlookup)
	o.done(opForget, 0, time.Since(start), fuse.OK)
}

func (o *opObserver) GetAttr(cancel <-chan struct{}, input *fuse.GetAttrIn, out *fuse.AttrOut) fuse.Status {
	start := time.Now()
	st := o.RawFileSystem.GetAttr(cancel, input, out)
	o.done(opGetAttr, input.Pid, time.Since(start), st)
	return st
}

func (o *opObserver) SetAttr(cancel <-chan struct{}, input *fuse.SetAttrIn, out *fuse.AttrOut) fuse.Status {
	start := time.Now()
	st := o.RawFileSystem.SetAttr(cancel, input, out)
	o.done(opSetAttr, input.Pid, time.Since(start), st)
	return st
}

func (o *opObserver) Mknod(cancel <-chan struct{}, input *fuse.MknodIn, name string, out *fuse.EntryOut) fuse.Status {
	start := time.Now()
	st := o.RawFileSystem.Mknod(cancel, input, name, out)
	o.done(opMknod, input.Pid, time.Since(start), st)
	return st
}

func (o *opObserver) Mkdir(cancel <-chan struct{}, input *fuse.MkdirIn, name string, out *fuse.EntryOut) fuse.Status {
	start := time.Now()
	st := o.RawFileSystem.Mkdir(cancel, input, name, out)
	o.done(opMkdir, input.Pid, time.Since(start), st)
	return st
}

func (o *opObserver) Unlink(cancel <-chan struct{}, header *fuse.InHeader, name string) fuse.Status {
	start := time.Now()
	st := o.RawFileSystem.Unlink(cancel, header, name)
	o.done(opUnlink, header.Pid, time.Since(start), st)
	return st
}

func (o *opObserver) Rmdir(cancel <-chan struct{}, header *fuse.InHeader, name string) fuse.Status {
	start := time.Now()
	st := o.RawFileSystem.Rmdir(cancel, header, name)
	o.done(opRmdir, header.Pid, time.Since(start), st)
	return st
}

func (o *opObserver) Rename(cancel <-chan struct{}, input *fuse.RenameIn, oldName string, newName string) fuse.Status {
	start := time.Now()
	st := o.RawFileSystem.Rename(cancel, input, oldName, newName)
	o.done(opRename, input.Pid, time.Since(start), st)
	return st
}

func (o *opObserver) Link(cancel <-chan struct{}, input *fuse.LinkIn, filename string, out *fuse.EntryOut) fuse.Status {
	start := time.Now()
	st := o.RawFileSystem.Link(cancel, input, filename, out)
	o.done(opLink, input.Pid, time.Since(start), st)
	return st
}

func (o *opObserver) Symlink(cancel <-chan struct{}, header *fuse.InHeader, pointedTo string, linkName string, out *fuse.EntryOut) fuse.Status {
	start := time.Now()
	st := o.RawFileSystem.Symlink(cancel, header, pointedTo, linkName, out)
	o.done(opSymlink, header.Pid, time.Since(start), st)
	return st
}

func (o *opObserver) Readlink(cancel <-chan struct{}, header *fuse.InHeader) ([]byte, fuse.Status) {
	start := time.Now()
	target, st := o.RawFileSystem.Readlink(cancel, header)
	o.done(opReadlink, header.Pid, time.Since(start), st)
	return target, st
}

func (o *opObserver) Access(cancel <-chan struct{}, input *fuse.AccessIn) fuse.Status {
	start := time.Now()
	st := o.RawFileSystem.Access(cancel, input)
	o.done(opAccess, input.Pid, time.Since(start), st)
	return st
}

func (o *opObserver) GetXAttr(cancel <-chan struct{}, header *fuse.InHeader, attr string, dest []byte) (uint32, fuse.Status) {
	start := time.Now()
	n, st := o.RawFileSystem.GetXAttr(cancel, header, attr, dest)
	o.done(opGetXAttr, header.Pid, time.Since(start), st)
	return n, st
}

func (o *opObserver) ListXAttr(cancel <-chan struct{}, header *fuse.InHeader, dest []byte) (uint32, fuse.Status) {
	start := time.Now()
	n, st := o.RawFileSystem.ListXAttr(cancel, header, dest)
	o.done(opListXAttr, header.Pid, time.Since(start), st)
	return n, st
}

func (o *opObserver) SetXAttr(cancel <-chan struct{}, input *fuse.SetXAttrIn, attr string, data []byte) fuse.Status {
	start := time.Now()
	st := o.RawFileSystem.SetXAttr(cancel, input, attr, data)
	o.done(opSetXAttr, input.Pid, time.Since(start), st)
	return st
}

func (o *opObserver) RemoveXAttr(cancel <-chan struct{}, header *fuse.InHeader, attr string) fuse.Status {
	start := time.Now()
	st := o.RawFileSystem.RemoveXAttr(cancel, header, attr)
	o.done(opRemoveXAttr, header.Pid, time.Since(start), st)
	return st
}

func (o *opObserver) Create(cancel <-chan struct{}, input *fuse.CreateIn, name string, out *fuse.CreateOut) fuse.Status {
	start := time.Now()
	st := o.RawFileSystem.Create(cancel, input, name, out)
	o.done(opCreate, input.Pid, time.Since(start), st)
	return st
}

func (o *opObserver) Tmpfile(cancel <-chan struct{}, input *fuse.CreateIn, out *fuse.CreateOut) fuse.Status {
	start := time.Now()
	st := o.RawFileSystem.Tmpfile(cancel, input, out)
	o.done(opTmpfile, input.Pid, time.Since(start), st)
	return st
}

func (o *opObserver) Open(cancel <-chan struct{}, input *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	start := time.Now()
	st := o.RawFileSystem.Open(cancel, input, out)
	o.done(opOpen, input.Pid, time.Since(start), st)
	return st
}

func (o *opObserver) Read(cancel <-chan struct{}, input *fuse.ReadIn, buf []byte) (fuse.ReadResult, fuse.Status) {
	start := time.Now()
	res, st := o.RawFileSystem.Read(cancel, input, buf)
	o.done(opRead, input.Pid, time.Since(start), st)
	return res, st
}

func (o *opObserver) Lseek(cancel <-chan struct{}, in *fuse.LseekIn, out *fuse.LseekOut) fuse.Status {
	start := time.Now()
	st := o.RawFileSystem.Lseek(cancel, in, out)
	o.done(opLseek, in.Pid, time.Since(start), st)
	return st
}

func (o *opObserver) GetLk(cancel <-chan struct{}, input *fuse.LkIn, out *fuse.LkOut) fuse.Status {
	start := time.Now()
	st := o.RawFileSystem.GetLk(cancel, input, out)
	o.done(opGetLk, input.Pid, time.Since(start), st)
	return st
}

func (o *opObserver) SetLk(cancel <-chan struct{}, input *fuse.LkIn) fuse.Status {
	start := time.Now()
	st := o.RawFileSystem.SetLk(cancel, input)
	o.done(opSetLk, input.Pid, time.Since(start), st)
	return st
}

func (o *opObserver) SetLkw(cancel <-chan struct{}, input *fuse.LkIn) fuse.Status {
	start := time.Now()
	st := o.RawFileSystem.SetLkw(cancel, input)
	o.done(opSetLkw, input.Pid, time.Since(start), st)
	return st
}

func (o *opObserver) Release(cancel <-chan struct{}, input *fuse.ReleaseIn) {
	start := time.Now()
	o.RawFileSystem.Release(cancel, input)
	o.done(opRelease, input.Pid, time.Since(start), fuse.OK)
}

func (o *opObserver) Write(cancel <-chan struct{}, input *fuse.WriteIn, data []byte) (uint32, fuse.Status) {
	start := time.Now()
	n, st := o.RawFileSystem.Write(cancel, input, data)
	o.done(opWrite, input.Pid, time.Since(start), st)
	return n, st
}

// Writev is what go-fuse calls for WRITE; on ENOSYS it calls Write, which
// reports the request, so that it is not counted twice.
func (o *opObserver) Writev(cancel <-chan struct{}, input *fuse.WriteIn, data [][]byte) (uint32, fuse.Status) {
	start := time.Now()
	n, st := o.RawFileSystem.Writev(cancel, input, data)
	if st != fuse.ENOSYS {
		o.done(opWrite, input.Pid, time.Since(start), st)
	}
	return n, st
}

func (o *opObserver) CopyFileRange(cancel <-chan struct{}, input *fuse.CopyFileRangeIn) (uint32, fuse.Status) {
	start := time.Now()
	n, st := o.RawFileSystem.CopyFileRange(cancel, input)
	o.done(opCopyFileRange, input.Pid, time.Since(start), st)
	return n, st
}

func (o *opObserver) Ioctl(cancel <-chan struct{}, input *fuse.IoctlIn, inbuf []byte, output *fuse.IoctlOut, outbuf []byte) fuse.Status {
	start := time.Now()
	st := o.RawFileSystem.Ioctl(cancel, input, inbuf, output, outbuf)
	o.done(opIoctl, input.Pid, time.Since(start), st)
	return st
}

func (o *opObserver) Flush(cancel <-chan struct{}, input *fuse.FlushIn) fuse.Status {
	start := time.Now()
	st := o.RawFileSystem.Flush(cancel, input)
	o.done(opFlush, input.Pid, time.Since(start), st)
	return st
}

func (o *opObserver) Fsync(cancel <-chan struct{}, input *fuse.FsyncIn) fuse.Status {
	start := time.Now()
	st := o.RawFileSystem.Fsync(cancel, input)
	o.done(opFsync, input.Pid, time.Since(start), st)
	return st
}

func (o *opObserver) Fallocate(cancel <-chan struct{}, input *fuse.FallocateIn) fuse.Status {
	start := time.Now()
	st := o.RawFileSystem.Fallocate(cancel, input)
	o.done(opFallocate, input.Pid, time.Since(start), st)
	return st
}

func (o *opObserver) OpenDir(cancel <-chan struct{}, input *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	start := time.Now()
	st := o.RawFileSystem.OpenDir(cancel, input, out)
	o.done(opOpenDir, input.Pid, time.Since(start), st)
	return st
}

func (o *opObserver) ReadDir(cancel <-chan struct{}, input *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	start := time.Now()
	st := o.RawFileSystem.ReadDir(cancel, input, out)
	o.done(opReadDir, input.Pid, time.Since(start), st)
	return st
}

func (o *opObserver) ReadDirPlus(cancel <-chan struct{}, input *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	start := time.Now()
	st := o.RawFileSystem.ReadDirPlus(cancel, input, out)
	o.done(opReadDirPlus, input.Pid, time.Since(start), st)
	return st
}

func (o *opObserver) ReleaseDir(input *fuse.ReleaseIn) {
	start := time.Now()
	o.RawFileSystem.ReleaseDir(input)
	o.done(opReleaseDir, input.Pid, time.Since(start), fuse.OK)
}

func (o *opObserver) FsyncDir(cancel <-chan struct{}, input *fuse.FsyncIn) fuse.Status {
	start := time.Now()
	st := o.RawFileSystem.FsyncDir(cancel, input)
	o.done(opFsyncDir, input.Pid, time.Since(start), st)
	return st
}

func (o *opObserver) StatFs(cancel <-chan struct{}, input *fuse.InHeader, out *fuse.StatfsOut) fuse.Status {
	start := time.Now()
	st := o.RawFileSystem.StatFs(cancel, input, out)
	o.done(opStatFs, input.Pid, time.Since(start), st)
	return st
}

func (o *opObserver) Statx(cancel <-chan struct{}, input *fuse.StatxIn, out *fuse.StatxOut) fuse.Status {
	start := time.Now()
	st := o.RawFileSystem.Statx(cancel, input, out)
	o.done(opStatx, input.Pid, time.Since(start), st)
	return st
}
