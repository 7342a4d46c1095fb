package fs

import (
	"errors"
	"log/slog"
	"syscall"

	"github.com/spoolfs/spoolfs/fs/control"
	"github.com/spoolfs/spoolfs/quota"
	"github.com/spoolfs/spoolfs/spill"
)

// toErrno is the one place where Go errors from spill, quota and the spill
// disk become the errno a program sees. Errors nobody expected become EIO,
// with a log line so that they can be found.
func (f *FS) toErrno(op string, err error) syscall.Errno {
	var errno syscall.Errno
	switch {
	case err == nil:
		return 0
	case errors.Is(err, quota.ErrNoSpace), errors.Is(err, spill.ErrTooManyFiles), errors.Is(err, spill.ErrNoRAM):
		errno = syscall.ENOSPC
	case errors.Is(err, quota.ErrQuota):
		errno = syscall.EDQUOT
	case errors.Is(err, spill.ErrNoData):
		return syscall.ENXIO
	case errors.Is(err, spill.ErrClosed):
		return syscall.EBADF
	case errors.Is(err, spill.ErrInvalid):
		// An offset or length the kernel let through and spill refuses:
		// the caller's mistake, not ours, so no more than a debug line.
		f.log.Debug("invalid argument", "op", op, "err", err)
		return syscall.EINVAL
	case errors.Is(err, spill.ErrTooLarge):
		f.log.Debug("file too large", "op", op, "err", err)
		return syscall.EFBIG
	case errors.Is(err, spill.ErrCorrupt):
		f.log.Error("spilled data failed authentication", "op", op, "err", err)
		return syscall.EIO
	case errors.As(err, &errno):
		// A syscall error from the spill disk, such as ENOSPC or EIO.
	default:
		f.log.Error("unexpected error", "op", op, "err", err)
		return syscall.EIO
	}
	if errno == syscall.ENOSPC || errno == syscall.EDQUOT {
		f.log.Debug("refused", "op", op, "errno", errno.Error())
		f.obs.Refused(errno)
	} else {
		f.log.Warn("spill disk error", "op", op, "err", err)
	}
	return errno
}

// refusedValueErrno is what setxattr of a control attribute returns for a
// value it refused: EPERM for one past the mount's ceilings (a session's
// owner may not go there, root may), ESRCH for an owner process that does
// not live, EINVAL for any other.
func refusedValueErrno(err error) syscall.Errno {
	switch {
	case errors.Is(err, control.ErrCeiling):
		return syscall.EPERM
	case errors.Is(err, syscall.ESRCH):
		return syscall.ESRCH
	}
	return syscall.EINVAL
}

// limitsErrno is what a write of user.spoolfs.limits returns for limits
// the mount refused: ENOSPC for a size or inode count below what is in
// use, EBUSY for a RAM budget that files could not be moved to disk to get
// down to, EIO (logged) for anything else.
func (f *FS) limitsErrno(err error) syscall.Errno {
	switch {
	case errors.Is(err, quota.ErrNoSpace):
		return syscall.ENOSPC
	case errors.Is(err, spill.ErrNoRAM), errors.Is(err, spill.ErrTooManyFiles):
		return syscall.EBUSY
	}
	return f.toErrno("setlimits", err)
}

// discardLogger is used when the caller gives none: library code logs
// nothing on its own.
func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
