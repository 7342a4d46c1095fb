package fs

import (
	"container/list"
	"context"
	"errors"
	"io"
	"os"
	"sync"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/spoolfs/spoolfs/quota"
	"github.com/spoolfs/spoolfs/spill"
)

// fileNode is a regular file. Its bytes live in a spill.File; it is freed
// when it has neither a name nor an open handle, like an unlinked file on
// any POSIX filesystem.
type fileNode struct {
	gofs.Inode
	attrs
	data *spill.File

	// Guarded by attrs.mu:
	opens    int  // open handles, counted from Create/Open to Release
	linkable bool // an O_TMPFILE file that linkat may still give a name
	freed    bool
	// cached: some open of the file went through the page cache, so the
	// kernel may hold a copy of its bytes. A file only ever written
	// through write-only (direct) opens has none for the cacheKeeper to
	// bound.
	cached    bool
	fillState fillState
	// cachedOpens counts the open handles in the kernel's cached mode
	// (neither direct nor passthrough), which keep a passthrough episode
	// from starting.
	cachedOpens int
	// pt is the file's passthrough episode, while it has passthrough
	// opens; then all its opens are (passthrough.go).
	pt *episode
	// ptForever: a read-write open joined an episode, so a shared
	// mapping of the backing file may outlive it; every open of the file
	// is a passthrough one from then on, and stickyUnpin keeps the file
	// pinned until it is freed.
	ptForever   bool
	stickyUnpin func()

	// fill is held while the cacheFiller stores a piece of the file in the
	// kernel's cache, and by whatever could change the file's bytes while
	// it has no writable handle: opening one, a truncate, the last close.
	// It is taken before attrs.mu, and never by a READ or WRITE handler
	// (the kernel holds page locks while those are in flight, and a store
	// waits for page locks).
	fill sync.Mutex

	// Guarded by the cacheKeeper's mu:
	cacheElem   *list.Element
	cachedBytes int64
}

var (
	_ gofs.NodeGetattrer = (*fileNode)(nil)
	_ gofs.NodeSetattrer = (*fileNode)(nil)
	_ gofs.NodeOpener    = (*fileNode)(nil)
	_ gofs.NodeReader    = (*fileNode)(nil)
	_ gofs.NodeWriter    = (*fileNode)(nil)
	_ gofs.NodeReleaser  = (*fileNode)(nil)
	_ gofs.NodeFsyncer   = (*fileNode)(nil)
	_ gofs.NodeFlusher   = (*fileNode)(nil)
	_ gofs.NodeAllocater = (*fileNode)(nil)
	_ gofs.NodeLseeker   = (*fileNode)(nil)
	_ gofs.NodeTmpfiler  = (*dirNode)(nil)
)

// handle is one open of a file. Its existence is what makes go-fuse call
// Release, which is where unlinked files are freed.
type handle struct {
	// writable: the open may change the file's bytes (write access, or
	// O_TRUNC), so the cacheFiller must leave the file alone while it lasts.
	writable bool
	// passthrough: the open is part of the file's passthrough episode.
	passthrough bool
	// cached: the open reads and writes through the kernel's page cache.
	cached bool
}

// openFlags keeps the page cache across opens: every write goes through the
// kernel, so the cache is never stale.
const openFlags = fuse.FOPEN_KEEP_CACHE

// openFlagsFor is what an open with the open(2) flags flags gets. A
// write-only open (cp, dd, tar x, a compiler's output, the shell's >) can
// neither read nor mmap through its descriptor, so its writes skip the page
// cache (FOPEN_DIRECT_IO): the kernel copies them straight from the writer's
// buffer into the request, one copy less (1 MiB writes went from 1.4 to 2.3
// GB/s), and data written once does not sit in the page cache as a second
// copy of what spoolfs holds. A direct write drops the cached pages it
// overlaps, so readers and mappings on other descriptors stay coherent. With
// the writeback cache the point is to gather small writes in the page cache,
// so there every open is cached.
func (f *FS) openFlagsFor(flags uint32) uint32 {
	if flags&syscall.O_ACCMODE == syscall.O_WRONLY && f.caps&fuse.CAP_WRITEBACK_CACHE == 0 {
		return openFlags | fuse.FOPEN_DIRECT_IO
	}
	return openFlags
}

func (f *FS) newFile(ctx context.Context, parent *dirNode, mode uint32, charge *quota.Charge, inh inheritance) *fileNode {
	fn := &fileNode{}
	f.initAttrs(&fn.attrs, ctx, parent, syscall.S_IFREG|mode&07777, charge)
	fn.adopt(inh)
	fn.data = f.pool.NewFile(charge)
	if s := fn.sess; s != nil {
		s.register(fn)
	}
	return fn
}

// Tmpfile serves open(O_TMPFILE): a file with no name, freed at its last
// close unless linkat gives it one.
func (n *dirNode) Tmpfile(ctx context.Context, flags, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
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
	if err := charge.ReserveInodes(1); err != nil {
		inh.release(n.fsys, charge)
		return nil, nil, 0, n.fsys.toErrno("tmpfile", err)
	}
	file := n.fsys.newFile(ctx, n, mode, charge, inh)
	file.nlink = 0
	h, fopen := file.open(flags)
	file.linkable = flags&syscall.O_EXCL == 0
	ch := n.NewPersistentInode(ctx, file, gofs.StableAttr{Mode: syscall.S_IFREG, Ino: file.ino})
	file.fillEntry(out)
	return ch, h, fopen, 0
}

func (n *fileNode) fillEntry(out *fuse.EntryOut) {
	var ao fuse.AttrOut
	n.Getattr(context.Background(), nil, &ao)
	out.Attr = ao.Attr
}

func (n *fileNode) Getattr(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.mu.Lock()
	n.fillAttrLocked(&out.Attr)
	n.mu.Unlock()
	n.fillSize(&out.Attr)
	return 0
}

// fillSize sets the size, and adds the data's blocks to what
// fillAttrLocked counted.
func (n *fileNode) fillSize(out *fuse.Attr) {
	out.Size = uint64(n.data.Size())
	out.Blocks += uint64(n.data.Allocated() / 512)
}

func (n *fileNode) Setattr(ctx context.Context, f gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	n.active()
	if size, ok := in.GetSize(); ok {
		// truncate(2) needs no handle: keep the filler out meanwhile.
		n.fill.Lock()
		err := n.data.Truncate(int64(size))
		n.fill.Unlock()
		if err != nil {
			return n.fsys.toErrno("truncate", err)
		}
	}
	unlock := n.lockForSetattr(in)
	if _, ok := in.GetSize(); ok {
		n.touchLocked()
	}
	errno := n.setattrLocked(in)
	n.fillAttrLocked(&out.Attr)
	unlock()
	n.fillSize(&out.Attr)
	return errno
}

func (n *fileNode) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	n.mu.Lock()
	freed := n.freed
	n.mu.Unlock()
	if freed {
		return nil, 0, syscall.ENOENT
	}
	var req <-chan struct{}
	if fc, ok := ctx.(*fuse.Context); ok {
		req = fc.Cancel
	}
	h, fopen := n.openFor(flags, req)
	return h, fopen, 0
}

// open counts a new handle, in the file and in its session, and returns it
// with the FOPEN_* flags to answer an open(2) with flags with.
func (n *fileNode) open(flags uint32) (*handle, uint32) { return n.openFor(flags, nil) }

// openFor is open for the OPEN request req (its cancel channel; nil if
// there is none), which may be answered through passthrough.
func (n *fileNode) openFor(flags uint32, req <-chan struct{}) (*handle, uint32) {
	fopen := n.fsys.openFlagsFor(flags)
	h := &handle{writable: flags&syscall.O_ACCMODE != syscall.O_RDONLY || flags&syscall.O_TRUNC != 0}
	// Pinned before the locks: a pin waits for a write in flight.
	var backing *os.File
	var unpin func()
	n.mu.Lock()
	forever := n.ptForever
	n.mu.Unlock()
	if req != nil && (forever || n.fsys.passthroughWanted(flags)) && n.data.OnDisk() {
		backing, unpin, _ = n.data.PinBacking()
	}
	if h.writable {
		n.fill.Lock() // wait out a piece being stored
	}
	n.mu.Lock()
	n.opens++
	if h.writable {
		n.fillState.writers++
	}
	switch {
	case req == nil:
	case n.pt != nil:
		h.passthrough = true
	case backing != nil && n.cachedOpens == 0:
		// Direct (write-only) opens may stay: the kernel minds only
		// cached ones. A writer's RELEASE often comes after the open
		// of whoever reads what it wrote.
		if id, ok := n.fsys.registerBackingFile(backing); ok {
			n.pt = &episode{id: id, unpin: unpin}
			h.passthrough, unpin = true, nil
		}
	}
	if h.passthrough {
		n.pt.opens++
		n.fsys.pt.ids.Store(req, n.pt.id)
		fopen = 0 // the kernel takes nothing but these with passthrough
		if h.writable || flags&oDirect != 0 {
			fopen = fuse.FOPEN_DIRECT_IO // reads and writes come to us
		}
		if flags&syscall.O_ACCMODE == syscall.O_RDWR {
			n.ptForever = true // it may map the backing file, writable
		}
	} else if fopen&fuse.FOPEN_DIRECT_IO == 0 {
		n.cached, h.cached = true, true
		n.cachedOpens++
	}
	first := n.opens == 1
	n.mu.Unlock()
	if h.writable {
		n.fill.Unlock()
	}
	if unpin != nil {
		unpin() // not needed after all
	}
	if first {
		n.fsys.cache.forget(n)
	}
	if s := n.sess; s != nil {
		s.opens.Add(1)
		s.touch()
	}
	return h, fopen
}

func (n *fileNode) Read(ctx context.Context, f gofs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	n.active()
	got, err := n.data.ReadAt(dest, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, n.fsys.toErrno("read", err)
	}
	// Every read that reaches us missed the kernel's cache (write-only
	// opens cannot read). A small one is a random read the kernel did
	// not read ahead for, and the next will miss too: let the filler put
	// the file there, unless this read was all of it (a small file read
	// whole). A sequential reader gets readahead's large reads, which
	// already cost one round trip per MiB.
	if len(dest) <= fillTriggerMax && (off > 0 || int64(got) < n.data.Size()) {
		n.fsys.filler.missed(n, off)
	}
	return fuse.ReadResultData(dest[:got]), 0
}

func (n *fileNode) Write(ctx context.Context, f gofs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	n.active()
	written, err := n.data.WriteAt(data, off)
	if written > 0 {
		n.wrote(ctx)
	}
	if err != nil && written == 0 {
		return 0, n.fsys.toErrno("write", err)
	}
	return uint32(written), 0
}

// Fallocate modes that tmpfs supports; anything else is EOPNOTSUPP there too.
const (
	fallocKeepSize  = 0x01
	fallocPunchHole = 0x02
)

func (n *fileNode) Allocate(ctx context.Context, f gofs.FileHandle, off, size uint64, mode uint32) syscall.Errno {
	var err error
	switch mode {
	case 0, fallocKeepSize:
		err = n.data.Allocate(int64(off), int64(size), mode == fallocKeepSize)
	case fallocPunchHole | fallocKeepSize:
		err = n.data.PunchHole(int64(off), int64(size))
	default:
		return syscall.EOPNOTSUPP
	}
	if err != nil {
		return n.fsys.toErrno("fallocate", err)
	}
	if mode != fallocKeepSize {
		n.touchTimes()
	}
	return 0
}

const (
	seekData = 3 // SEEK_DATA
	seekHole = 4 // SEEK_HOLE
)

// Lseek answers SEEK_DATA and SEEK_HOLE; the kernel handles the others.
func (n *fileNode) Lseek(ctx context.Context, f gofs.FileHandle, off uint64, whence uint32) (uint64, syscall.Errno) {
	var pos int64
	var err error
	switch whence {
	case seekData:
		pos, err = n.data.SeekData(int64(off))
	case seekHole:
		pos, err = n.data.SeekHole(int64(off))
	default:
		return 0, syscall.EINVAL
	}
	if err != nil {
		return 0, n.fsys.toErrno("lseek", err)
	}
	return uint64(pos), 0
}

// Fsync has nothing to do: spoolfs promises no durability, and data is
// visible to every reader as soon as a write returns.
func (n *fileNode) Fsync(ctx context.Context, f gofs.FileHandle, flags uint32) syscall.Errno {
	return 0
}

// Flush answers ENOSYS, which tells the kernel never to send FLUSH again:
// there is nothing to flush, and a close then costs no round trip.
func (n *fileNode) Flush(ctx context.Context, f gofs.FileHandle) syscall.Errno {
	return syscall.ENOSYS
}

func (n *fileNode) Release(ctx context.Context, f gofs.FileHandle) syscall.Errno {
	if s := n.sess; s != nil {
		s.opens.Add(-1)
		s.touch()
	}
	h, _ := f.(*handle)
	// A piece being stored lands before the count drops, so before the
	// cacheKeeper may drop the cache below; the filler stores none after.
	n.fill.Lock()
	n.mu.Lock()
	n.opens--
	if h != nil && h.writable {
		n.fillState.writers--
	}
	if h != nil && h.cached {
		n.cachedOpens--
	}
	var ended *episode
	if h != nil && h.passthrough {
		if n.pt.opens--; n.pt.opens == 0 {
			ended, n.pt = n.pt, nil
		}
	}
	closed := n.opens == 0
	last := closed && n.nlink == 0
	cached := n.cached
	n.mu.Unlock()
	n.fill.Unlock()
	if ended != nil {
		// The kernel let go of its passthrough opens before it sent
		// this RELEASE: the backing file is no longer its to read.
		n.fsys.unregisterBackingFile(ended.id)
		n.endEpisode(ended)
	}
	switch {
	case last:
		n.free()
	case closed && cached && !n.data.OnDisk():
		n.fsys.cache.closed(n, n.data.Size())
	case closed && cached:
		n.dropSpilledCache()
	}
	return 0
}

// dropSpilledCache drops the FUSE file's page cache of a closed spilled
// file that passthrough can serve. What a cached (read-write) open wrote
// or read is cached twice: in the FUSE file's page cache and in the spill
// file's. The next read-only open passes through and reads the spill
// file's, and the kernel drops the FUSE file's copy in that open (without
// FOPEN_KEEP_CACHE): until then the copy is memory held for nothing, and
// then the dropping is paid by the reader (37 ms for 512 MiB, a third of
// a warm read of it). So it goes now, outside any request.
func (n *fileNode) dropSpilledCache() {
	if !n.fsys.passthroughOn() || !n.data.HasBacking() {
		return // read through the daemon: the FUSE file's copy is what makes re-reads fast
	}
	n.mu.Lock()
	drop := n.cached && n.opens == 0 // an open since then drops it at its own close
	if drop {
		n.cached = false
	}
	n.mu.Unlock()
	if drop {
		n.fsys.cache.drop(n)
	}
}

// endEpisode unpins the file after its passthrough episode, unless a
// mapping may outlive it: then the file stays pinned until it is freed.
func (n *fileNode) endEpisode(e *episode) {
	n.mu.Lock()
	keep := n.ptForever && n.stickyUnpin == nil && !n.freed
	if keep {
		n.stickyUnpin = e.unpin
	}
	n.mu.Unlock()
	if !keep {
		e.unpin()
	}
}

func (n *fileNode) dropLink() { n.dropLinks(false) }

// endOfSession drops every name; the bytes go at the last close.
func (n *fileNode) endOfSession() { n.dropLinks(true) }

func (n *fileNode) dropLinks(all bool) {
	n.mu.Lock()
	if n.nlink > 0 {
		n.nlink--
	}
	if all {
		n.nlink = 0
		n.linkable = false
	}
	n.ctime = n.fsys.now()
	last := n.nlink == 0 && n.opens == 0
	n.mu.Unlock()
	if last {
		n.free()
	}
}

// free gives the file's bytes and inode back, once.
func (n *fileNode) free() {
	n.mu.Lock()
	already := n.freed
	n.freed = true
	unpin := n.stickyUnpin
	n.stickyUnpin = nil
	n.mu.Unlock()
	if already {
		return
	}
	if unpin != nil {
		unpin()
	}
	n.fsys.cache.forget(n)
	if err := n.data.Close(); err != nil {
		n.fsys.log.Warn("closing spill file", "err", err)
	}
	n.charge.ReleaseInodes(1)
	n.freeMeta()
	n.unregister()
	n.ForgetPersistent()
	if s := n.sess; s != nil && s.ended.Load() {
		s.maybeClose()
	}
}
