package mounts

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// fusectlDir is where the kernel exposes each FUSE connection.
const fusectlDir = "/sys/fs/fuse/connections"

// ConnectionID returns the kernel's number for the FUSE connection mounted
// at dir: the minor number of its device.
func ConnectionID(dir string) (uint32, error) {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return 0, err
	}
	return unix.Minor(st.Dev), nil
}

// Abort cuts the FUSE connection id: every pending and future request fails
// and the server's loop ends. It is the way out of a hung mount, and of one
// that stays busy after a lazy unmount.
func Abort(id uint32) error {
	if err := ensureFusectl(); err != nil {
		return err
	}
	path := fmt.Sprintf("%s/%d/abort", fusectlDir, id)
	return os.WriteFile(path, []byte("1"), 0)
}

func ensureFusectl() error {
	if _, err := os.Stat(fusectlDir + "/"); err == nil {
		if entries, _ := os.ReadDir(fusectlDir); len(entries) > 0 || isMounted(fusectlDir) {
			return nil
		}
	}
	err := unix.Mount("fusectl", fusectlDir, "fusectl", 0, "")
	if err != nil && !errors.Is(err, unix.EBUSY) {
		return fmt.Errorf("mount fusectl: %w", err)
	}
	return nil
}

func isMounted(dir string) bool { return len(mountsOn(dir)) > 0 }

// mountEntry is one line of /proc/self/mountinfo.
type mountEntry struct {
	id, parent string // mount IDs
	dev        string // MAJ:MIN of the mounted device; for FUSE, 0:connection
	fsType     string
}

// mountsOn lists the mounts whose mount point is dir, in mountinfo's order.
func mountsOn(dir string) []mountEntry {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	return parseMountinfo(string(data), dir)
}

// parseMountinfo picks the mounts on dir out of mountinfo's text: "ID
// PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE ...".
func parseMountinfo(mountinfo, dir string) []mountEntry {
	var mounts []mountEntry
	for _, line := range strings.Split(mountinfo, "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || UnescapeMountPath(f[4]) != dir {
			continue
		}
		m := mountEntry{id: f[0], parent: f[1], dev: f[2]}
		if i := slices.Index(f[5:], "-"); i >= 0 && 5+i+1 < len(f) {
			m.fsType = UnescapeMountPath(f[5+i+1])
		}
		mounts = append(mounts, m)
	}
	return mounts
}

// topMount is the mount that the others on the same directory lie under:
// a mount stacked on another has that one as its parent.
func topMount(mounts []mountEntry) (mountEntry, bool) {
	for i := len(mounts) - 1; i >= 0; i-- {
		covered := slices.ContainsFunc(mounts, func(m mountEntry) bool { return m.parent == mounts[i].id })
		if !covered {
			return mounts[i], true
		}
	}
	return mountEntry{}, false
}

// ConnectionMounted reports whether a mount in this mount namespace is
// served by FUSE connection id, by mountinfo: whether the number is in
// use here (connection numbers are reused as soon as one ends).
func ConnectionMounted(id uint32) bool {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	dev := "0:" + strconv.FormatUint(uint64(id), 10)
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 2 && f[2] == dev {
			return true
		}
	}
	return false
}

// IsMounted reports whether dir is a mount point, by /proc/self/mountinfo,
// without touching dir itself (which could hang on a stuck FUSE server).
func IsMounted(dir string) bool { return isMounted(dir) }

// IsDeadMountError says whether err is what a FUSE mount whose server is
// gone answers: ENOTCONN ("Transport endpoint is not connected"), or
// ECONNABORTED once its connection was aborted. Over io_uring the kernel
// tears the connection down only once the dead daemon's rings are
// released, after the process has gone: a request handed to one of
// those rings meanwhile ends with ECANCELED.
func IsDeadMountError(err error) bool {
	return errors.Is(err, syscall.ENOTCONN) || errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.ECANCELED)
}

// probeTimeout is how long CheckMountpoint waits for a spoolfs to answer
// before calling it hung. A live one answers in microseconds, a dead one
// at once; only a stopped or stuck daemon takes longer.
const probeTimeout = 10 * time.Second

// CheckMountpoint says whether dir can be mounted on: nil for a directory
// that nothing is mounted on, ErrDeadMount when a dead spoolfs is on top
// (ClearDeadMounts takes it off), else a *MountedError naming what is there.
//
// Whether a spoolfs is dead is asked with statfs(2), which the kernel always
// sends to the server: stat(2) can be answered from the attributes it
// cached of the root, dead server or not.
func CheckMountpoint(dir string) error {
	top, ok := topMount(mountsOn(dir))
	if !ok {
		return nil
	}
	if top.fsType != "fuse."+FSName {
		return &MountedError{Dir: dir, FSType: top.fsType}
	}
	err := statfsWithin(dir, probeTimeout)
	if IsDeadMountError(err) {
		return ErrDeadMount
	}
	return &MountedError{Dir: dir, FSType: top.fsType, Hung: errors.Is(err, errNoAnswer)}
}

var errNoAnswer = errors.New("no answer")

// statfsWithin calls statfs(2) on dir and gives up waiting after d, with
// errNoAnswer: a FUSE server that is alive but stuck would keep the call
// waiting for ever. The call is then left behind in its goroutine.
func statfsWithin(dir string, d time.Duration) error {
	done := make(chan error, 1)
	go func() {
		var st unix.Statfs_t
		done <- unix.Statfs(dir, &st)
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		return errNoAnswer
	}
}

// detach takes the topmost mount off dir at once, busy or not: a dead
// mount has nothing left to flush.
func detach(dir string) error { return unix.Unmount(dir, unix.MNT_DETACH) }

// TopConnection returns the FUSE connection of the mount on top of dir,
// by mountinfo, without touching dir: what a daemon records once it has
// mounted, so that its shutdown can tell its own mount from one that
// covers it later (UnmountOwn).
func TopConnection(dir string) (uint32, bool) {
	top, ok := topMount(mountsOn(dir))
	if !ok {
		return 0, false
	}
	major, minor, ok := strings.Cut(top.dev, ":")
	id, err := strconv.ParseUint(minor, 10, 32)
	if !ok || major != "0" || err != nil {
		return 0, false
	}
	return uint32(id), true
}

// UnmountOwn unmounts the FUSE connection id from dir, as Unmount does, if
// that is the mount on top of dir. If another filesystem covers it (a
// container runtime's bind, an administrator's tmpfs), the path names that
// one, which is not ours to unmount: id is aborted instead, which ends its
// server and leaves a dead mount under the other for 'spoolfs umount' to
// clear once that one is gone, and the error is ErrCovered.
func UnmountOwn(dir string, id uint32) error {
	if top, ok := TopConnection(dir); !ok || top != id {
		if !slices.ContainsFunc(mountsOn(dir), func(m mountEntry) bool { return m.dev == "0:"+strconv.FormatUint(uint64(id), 10) }) {
			return nil // not mounted any more
		}
		if err := Abort(id); err != nil {
			return fmt.Errorf("unmount %s: %w, and aborting our connection failed: %v", dir, ErrCovered, err)
		}
		return fmt.Errorf("unmount %s: %w; our connection is cut off, and 'spoolfs umount %s' clears it once that one is gone", dir, ErrCovered, dir)
	}
	return Unmount(dir)
}

// Unmount unmounts dir; if it is busy, it detaches it and aborts its
// connection so that open files fail instead of keeping the daemon alive,
// which is what a temporary filesystem being torn down must do.
func Unmount(dir string) error {
	err := unix.Unmount(dir, 0)
	if err == nil || errors.Is(err, unix.EINVAL) { // EINVAL: not mounted
		return nil
	}
	id, idErr := ConnectionID(dir)
	if derr := unix.Unmount(dir, unix.MNT_DETACH); derr != nil {
		return fmt.Errorf("unmount %s: %w", dir, derr)
	}
	if idErr == nil {
		return Abort(id)
	}
	return nil
}

// SetReadahead sets the kernel's readahead for the mount at dir, in KiB.
// FUSE mounts start at 128 KiB, which splits sequential reads into 128 KiB
// requests; 1024 KiB (the most one request can carry here) makes cold
// sequential reads faster.
func SetReadahead(dir string, kb int) error {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return err
	}
	path := fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", unix.Major(st.Dev), unix.Minor(st.Dev))
	return os.WriteFile(path, []byte(strconv.Itoa(kb)), 0)
}
