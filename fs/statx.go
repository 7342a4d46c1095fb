package fs

import (
	"context"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// statx(2) asks for more than stat(2) has: a node's birth time, which it
// gets when it is made (attrs.btime) and keeps. Each node kind answers
// with what its getattr gives and that.

// The statx mask bits spoolfs fills (linux/stat.h).
const (
	statxBasicStats = 0x7ff
	statxBtime      = 0x800
)

var (
	_ gofs.NodeStatxer = (*dirNode)(nil)
	_ gofs.NodeStatxer = (*fileNode)(nil)
	_ gofs.NodeStatxer = (*symlinkNode)(nil)
	_ gofs.NodeStatxer = (*specialNode)(nil)
)

func (n *dirNode) Statx(ctx context.Context, f gofs.FileHandle, flags, mask uint32, out *fuse.StatxOut) syscall.Errno {
	return statx(ctx, n, &n.attrs, out)
}

func (n *fileNode) Statx(ctx context.Context, f gofs.FileHandle, flags, mask uint32, out *fuse.StatxOut) syscall.Errno {
	return statx(ctx, n, &n.attrs, out)
}

func (n *symlinkNode) Statx(ctx context.Context, f gofs.FileHandle, flags, mask uint32, out *fuse.StatxOut) syscall.Errno {
	return statx(ctx, n, &n.attrs, out)
}

func (n *specialNode) Statx(ctx context.Context, f gofs.FileHandle, flags, mask uint32, out *fuse.StatxOut) syscall.Errno {
	return statx(ctx, n, &n.attrs, out)
}

// statx fills out from node's getattr and a's birth time.
func statx(ctx context.Context, node gofs.NodeGetattrer, a *attrs, out *fuse.StatxOut) syscall.Errno {
	var ao fuse.AttrOut
	if errno := node.Getattr(ctx, nil, &ao); errno != 0 {
		return errno
	}
	at := &ao.Attr
	out.Mask = statxBasicStats | statxBtime
	out.Blksize = at.Blksize
	out.Nlink = at.Nlink
	out.Uid, out.Gid = at.Uid, at.Gid
	out.Mode = uint16(at.Mode)
	out.Ino = at.Ino
	out.Size = at.Size
	out.Blocks = at.Blocks
	out.Atime = sxTime(at.Atime, at.Atimensec)
	out.Mtime = sxTime(at.Mtime, at.Mtimensec)
	out.Ctime = sxTime(at.Ctime, at.Ctimensec)
	bt := a.btime
	out.Btime = sxTime(uint64(bt.Unix()), uint32(bt.Nanosecond()))
	// The kernel's encoding of a device number (new_encode_dev).
	out.RdevMajor = at.Rdev >> 8 & 0xfff
	out.RdevMinor = at.Rdev&0xff | at.Rdev>>12&0xfff00
	return 0
}

func sxTime(sec uint64, nsec uint32) fuse.SxTime { return fuse.SxTime{Sec: sec, Nsec: nsec} }
