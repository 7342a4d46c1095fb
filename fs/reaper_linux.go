package fs

import (
	"errors"
	"fmt"
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

// remover removes ended sessions, for one batch of the reaper, with
// rmdir(2) in the mount's root, from the reaper's thread, so that the
// kernel tells the root's watchers (IN_DELETE) as for any rmdir. The root
// answers these rmdirs' requests for the session being removed, and only
// those, as if it were still there (see removal).
//
// The rmdirs go through a private clone of the mount (open_tree(2)): a
// detached mount of the same filesystem, which nobody else sees, and
// which the user's mount does not depend on. Through the user's mount
// itself, each rmdir would make an umount(8) made meanwhile fail with
// EBUSY. Inotify watches belong to inodes, not to mounts, so the root's
// watchers see the rmdir all the same. The clone keeps the filesystem,
// and so the FUSE connection, alive after the user's mount is gone: it is
// dropped as soon as the mount table changes (the user's mount may have
// gone), and at the end of the batch, so that an unmount ends the
// connection after the rmdir under way at most. Making a clone and
// dropping it costs some 75 µs, about as much as an rmdir: one per batch,
// not per session.
//
// Cloning needs CAP_SYS_ADMIN over the mount's namespace. Where it fails,
// and where the mount point shows another filesystem (ours was unmounted,
// or something covers it), remove says so and the session goes by
// NOTIFY_DELETE.
type remover struct {
	r     *reaper
	tid   uint32 // the reaper's thread: the caller of the rmdirs' requests
	clone int    // the clone, or -1
	table int    // /proc/self/mountinfo, read as of the clone's making; or -1
	err   error  // why there is no clone, until the mount table changes
}

func (r *reaper) newRemover(tid uint32) *remover {
	return &remover{r: r, tid: tid, clone: -1, table: -1}
}

// remove removes the ended session e, which the reaper's rmdir alone still
// finds in the root.
func (rm *remover) remove(e endedSession) error {
	fd, err := rm.mount()
	if err != nil {
		return err
	}
	rm.r.removing.Store(&removal{tid: rm.tid, name: e.name, dir: e.dir})
	defer rm.r.removing.Store(nil)
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

// mount returns the clone's root, made on first use, and made afresh if
// the mount table has changed since.
func (rm *remover) mount() (int, error) {
	if rm.table >= 0 && !tableChanged(rm.table) {
		return rm.clone, rm.err
	}
	rm.close()
	root := rm.r.root.Load()
	if root == nil {
		return -1, errors.New("not told where the mount is")
	}
	// Opened first, so that it shows any change after the clone is made.
	table, err := unix.Open("/proc/self/mountinfo", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	rm.table = table
	rm.clone, rm.err = cloneMount(root)
	return rm.clone, rm.err
}

// letGoIfUnmounted drops the clone if the mount table has changed, so that
// a long run of work between two rmdirs does not keep the FUSE connection
// alive after the user's mount is gone.
func (rm *remover) letGoIfUnmounted() {
	if rm.clone >= 0 && tableChanged(rm.table) {
		rm.close()
	}
}

// close drops the clone, if any; the next rmdir makes another.
func (rm *remover) close() {
	if rm.clone >= 0 {
		unix.Close(rm.clone)
	}
	if rm.table >= 0 {
		unix.Close(rm.table)
	}
	rm.clone, rm.table, rm.err = -1, -1, nil
}

// cloneMount makes a private clone of the mount at root.dir, if that is
// still ours.
func cloneMount(root *mountRoot) (int, error) {
	fd, err := unix.OpenTree(unix.AT_FDCWD, root.dir, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("open_tree: %w", err)
	}
	// What the kernel has cached says which filesystem this is: no need
	// to ask the daemon (AT_STATX_DONT_SYNC).
	var st unix.Statx_t
	err = unix.Statx(fd, "", unix.AT_EMPTY_PATH|unix.AT_STATX_DONT_SYNC, unix.STATX_INO, &st)
	if err == nil && (unix.Mkdev(st.Dev_major, st.Dev_minor) != root.dev || st.Ino != rootIno) {
		err = errNotOurs
	}
	if err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// tableChanged says whether the mount table has changed since table, an
// open /proc/self/mountinfo, was opened or last asked.
func tableChanged(table int) bool {
	fds := []unix.PollFd{{Fd: int32(table), Events: unix.POLLPRI}}
	if _, err := unix.Poll(fds, 0); err != nil {
		return true // cannot tell: look again
	}
	return fds[0].Revents&(unix.POLLPRI|unix.POLLERR) != 0
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
