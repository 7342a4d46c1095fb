package fs

import (
	"context"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

var _ gofs.NodeReaddirer = (*dirNode)(nil)

// Readdir lists a snapshot of the directory, "." and ".." first, as tmpfs
// does. Entries added or removed while it is read do not disturb the
// listing; a seek back to the start (rewinddir) takes a new snapshot, as
// POSIX asks.
func (n *dirNode) Readdir(ctx context.Context) (gofs.DirStream, syscall.Errno) {
	n.active()
	l := &dirListing{dir: n}
	l.snapshot()
	return l, 0
}

// dirListing is one open directory's view of its entries.
type dirListing struct {
	dir     *dirNode
	entries []fuse.DirEntry
	next    int
}

var _ gofs.FileSeekdirer = (*dirListing)(nil)

func (l *dirListing) snapshot() {
	d := &l.dir.Inode
	parent := d
	if _, p := d.Parent(); p != nil {
		parent = p
	}
	children := d.Children()
	if s := l.dir.sess; s != nil && s.ended.Load() {
		children = nil // an ended session is empty, whatever the tree says
	}
	entries := make([]fuse.DirEntry, 0, len(children)+2)
	entries = append(entries,
		fuse.DirEntry{Name: ".", Mode: syscall.S_IFDIR, Ino: d.StableAttr().Ino},
		fuse.DirEntry{Name: "..", Mode: syscall.S_IFDIR, Ino: parent.StableAttr().Ino})
	for name, ch := range children {
		if sd, ok := ch.Operations().(*sessionDir); ok && sd.s.ended.Load() {
			continue
		}
		entries = append(entries, fuse.DirEntry{Name: name, Mode: ch.Mode(), Ino: ch.StableAttr().Ino})
	}
	for i := range entries {
		entries[i].Off = uint64(i + 1) // the offset of the entry after this one
	}
	l.entries, l.next = entries, 0
}

func (l *dirListing) HasNext() bool { return l.next < len(l.entries) }

func (l *dirListing) Next() (fuse.DirEntry, syscall.Errno) {
	e := l.entries[l.next]
	l.next++
	return e, 0
}

func (l *dirListing) Close() {}

// Seekdir moves to an offset handed out earlier; 0 starts over with a
// fresh snapshot.
func (l *dirListing) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	if off == 0 {
		l.snapshot()
		return 0
	}
	l.next = int(min(off, uint64(len(l.entries))))
	return 0
}
