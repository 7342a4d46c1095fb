package fs

import (
	"errors"
	"runtime"

	"golang.org/x/sys/unix"
)

// lockThread keeps the calling goroutine on its thread until unlock, and
// returns the thread's id, which is what the kernel gives as the caller of
// the FUSE requests that the thread's system calls make.
func lockThread() (tid uint32, unlock func()) {
	runtime.LockOSThread()
	return uint32(unix.Gettid()), runtime.UnlockOSThread
}

// errNotOurs says that the mount point shows another filesystem now (ours
// was unmounted, or something was mounted over it).
var errNotOurs = errors.New("the mount point no longer shows this mount")

// removeThroughKernel removes the ended session e with rmdir(2) in the
// mount's root, from the thread tid, so that the kernel tells the root's
// watchers (IN_DELETE) as for any rmdir. The root answers this rmdir's
// requests for e, and only those, as if e were still there (see removal).
//
// The root is opened afresh each time, and only for the rmdir: a
// descriptor held open would make every umount(8) of the mount fail
// with EBUSY. The rmdir waits for our own answers, so no lock is held.
func (r *reaper) removeThroughKernel(e endedSession, tid uint32) error {
	root := r.root.Load()
	if root == nil {
		return errors.New("not told where the mount is")
	}
	fd, err := unix.Open(root.dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	// What the kernel has cached says which filesystem this is: no need
	// to ask the daemon (AT_STATX_DONT_SYNC).
	var st unix.Statx_t
	if err := unix.Statx(fd, "", unix.AT_EMPTY_PATH|unix.AT_STATX_DONT_SYNC, unix.STATX_INO, &st); err != nil {
		return err
	}
	if unix.Mkdev(st.Dev_major, st.Dev_minor) != root.dev || st.Ino != rootIno {
		return errNotOurs
	}
	r.removing.Store(&removal{tid: tid, name: e.name, dir: e.dir})
	defer r.removing.Store(nil)
	err = unix.Unlinkat(fd, e.name, unix.AT_REMOVEDIR)
	if errors.Is(err, unix.ENOENT) && !nameTaken(e) {
		// The kernel holds that the name does not exist: someone looked
		// it up after the end, when the kernel no longer had the
		// session's entry. Drop that (a negative entry: nothing else
		// goes with it), so that the rmdir asks us.
		e.root.NotifyEntry(e.name)
		err = unix.Unlinkat(fd, e.name, unix.AT_REMOVEDIR)
	}
	return err
}

// mounted records where the mount's root is, for removeThroughKernel.
func (r *reaper) mounted(dir string) error {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return err
	}
	if st.Ino != rootIno {
		return errNotOurs
	}
	r.root.Store(&mountRoot{dir: dir, dev: st.Dev})
	return nil
}
