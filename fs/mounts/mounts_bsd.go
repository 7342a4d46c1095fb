//go:build darwin || freebsd

package mounts

import (
	"errors"
	"syscall"

	"golang.org/x/sys/unix"
)

var errNoFusectl = errors.New("aborting a FUSE connection needs Linux's fusectl")

// ConnectionID has no meaning without fusectl.
func ConnectionID(dir string) (uint32, error) { return 0, errNoFusectl }

// ConnectionMounted has no meaning without fusectl.
func ConnectionMounted(id uint32) bool { return false }

// TopConnection has no meaning without fusectl.
func TopConnection(dir string) (uint32, bool) { return 0, false }

// UnmountOwn is Unmount here: without connection numbers a daemon cannot
// tell its own mount from one over it.
func UnmountOwn(dir string, id uint32) error { return Unmount(dir) }

// Abort has no equivalent here; a forced unmount is the way out.
func Abort(id uint32) error { return errNoFusectl }

// IsMounted reports whether dir is the root of a mount.
func IsMounted(dir string) bool {
	var st unix.Statfs_t
	if unix.Statfs(dir, &st) != nil {
		return false
	}
	return unix.ByteSliceToString(st.Mntonname[:]) == dir
}

// IsDeadMountError says whether err is what a FUSE mount whose server is
// gone answers.
func IsDeadMountError(err error) bool {
	return errors.Is(err, syscall.ENOTCONN) || errors.Is(err, syscall.ENXIO)
}

// CheckMountpoint says whether dir can be mounted on: nil for a directory
// that nothing is mounted on, ErrDeadMount for a FUSE mount whose server is
// gone, else a *MountedError naming what is there. statfs(2) here cannot
// tell spoolfs from another FUSE filesystem.
func CheckMountpoint(dir string) error {
	var st unix.Statfs_t
	err := unix.Statfs(dir, &st)
	if IsDeadMountError(err) {
		return ErrDeadMount
	}
	if err != nil || unix.ByteSliceToString(st.Mntonname[:]) != dir {
		return nil
	}
	return &MountedError{Dir: dir, FSType: unix.ByteSliceToString(st.Fstypename[:])}
}

// detach force-unmounts dir: there is no lazy unmount here.
func detach(dir string) error { return unix.Unmount(dir, unix.MNT_FORCE) }

// Unmount unmounts dir, forcing it if busy.
func Unmount(dir string) error {
	if err := unix.Unmount(dir, 0); err == nil {
		return nil
	}
	return unix.Unmount(dir, unix.MNT_FORCE)
}

// SetReadahead is a no-op where the kernel has no per-mount knob for it.
func SetReadahead(dir string, kb int) error { return nil }
