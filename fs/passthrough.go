package fs

import (
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// Passthrough: a read-only open of a spilled file is answered with
// FOPEN_PASSTHROUGH and the id of its backing file (spill.File.PinBacking),
// and the kernel serves its reads, splices and mappings from that file
// itself: at the disk file's speed, with one copy of the bytes in the page
// cache (the backing file's) instead of two. Writes still come to the
// daemon, which writes the same backing file, so a passthrough reader sees
// them at once.
//
// The kernel (fs/fuse/iomode.c) allows an inode's opens to mix only so
// far: a passthrough open is refused (EIO to the opener) while the inode
// has an open in cached mode, and while it has a passthrough open every
// new open must be FOPEN_PASSTHROUGH with the same backing file, or it too
// fails with EIO. So:
//
//   - a read-only open (not O_DIRECT) of a file with no open in cached
//     mode starts a passthrough episode: the file is pinned and its
//     backing file registered with the kernel. Direct (write-only) opens
//     do not stand in the way, and they go on writing through the daemon;
//   - while an episode lasts, every open joins it. A writable or O_DIRECT
//     one gets FOPEN_DIRECT_IO as well, which the kernel lets override
//     passthrough for read and write: every write still comes to the
//     daemon (quotas, timestamps), and a mapping made through the open
//     maps the backing file, the page cache that readers share;
//   - an open made while the file has cached opens is served as before,
//     and so is every open of a RAM-tier or sealed file;
//   - the last close of the episode unregisters the backing file and
//     unpins the file;
//   - but a mapping made through a read-write open maps the backing file
//     and may outlive the episode (the kernel sends RELEASE once the
//     descriptor is closed, mapping or not), writing it still. So once a
//     read-write open has joined, every later open of the file is a
//     passthrough one too (a cached open would keep a stale copy of what
//     the mapping writes), and the file stays pinned until it is freed.
//     A pinned file is dense (spill.File.PinBacking), so the mapping has
//     no page to allocate that the quotas have not charged.
//
// A backing id costs a kernel reference to a file the daemon already has
// open, and no descriptor. The kernel refuses passthrough mount-wide with
// the writeback cache, or if the daemon lacks CAP_SYS_ADMIN, or before
// Linux 6.9; the first registration that fails turns passthrough off for
// the mount, with one log line, and every open is served as before.
type passthrough struct {
	server  atomic.Pointer[fuse.Server] // set by Init; nil: not served through RawFS
	off     atomic.Bool
	offOnce sync.Once
	// ids hands each passthrough open's backing id from the node's Open
	// to umasker.Open, which puts it in the reply; keyed by the request's
	// cancel channel, which is the request's own while it is in flight.
	ids sync.Map
}

// episode is a file's passthrough state while it has passthrough opens.
type episode struct {
	id    int32
	opens int
	unpin func()
}

// registerBackingFile registers backing with the kernel, or turns passthrough off if
// the kernel will not have it.
func (f *FS) registerBackingFile(backing *os.File) (int32, bool) {
	s := f.pt.server.Load()
	if s == nil || f.pt.off.Load() {
		return 0, false
	}
	id, errno := registerBacking(s, backing)
	if errno != 0 {
		f.pt.off.Store(true)
		f.pt.offOnce.Do(func() {
			f.log.Info("spilled files are read through the daemon: the kernel refused FUSE passthrough", "err", errno)
		})
		return 0, false
	}
	return id, true
}

func (f *FS) unregisterBackingFile(id int32) {
	if s := f.pt.server.Load(); s != nil {
		if errno := unregisterBacking(s, id); errno != 0 && errno != syscall.EBADF {
			f.log.Warn("unregistering a passthrough backing file", "id", id, "err", errno)
		}
	}
}

// passthroughOn reports whether spilled files may be read through
// passthrough on this mount: served through RawFS, and not refused by the
// kernel so far.
func (f *FS) passthroughOn() bool {
	return f.pt.server.Load() != nil && !f.pt.off.Load()
}

// passthroughWanted reports whether an open with flags may start an
// episode: read-only, and not O_DIRECT (the backing file system may want
// aligned buffers where FUSE takes any).
func (f *FS) passthroughWanted(flags uint32) bool {
	return f.passthroughOn() &&
		flags&syscall.O_ACCMODE == syscall.O_RDONLY && flags&(syscall.O_TRUNC|oDirect) == 0
}
