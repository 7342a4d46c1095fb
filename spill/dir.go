package spill

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// privateDir is the pool's own directory inside the spill directory. It is
// made and opened once, and every spill file is made relative to its
// descriptor: no path is resolved again, so someone who can rename entries
// of the spill directory cannot send spilled data elsewhere by moving the
// private directory and putting a symlink in its place.
//
// A tmp cleaner may remove it (it holds no names, its files being unnamed,
// and systemd-tmpfiles removes an empty directory of /tmp ten days old):
// the next spill then makes a new one, relative to the spill directory's
// descriptor, which is held open for the pool's life.
type privateDir struct {
	parent   *os.File // the spill directory, from which dir is removed at the end
	spillDir string   // parent's path, for messages only

	mu   sync.Mutex // guards the three below
	dir  *os.File   // the private directory
	name string     // dir's name in parent
	path string     // for messages only: never opened
}

// CheckDir reports whether dir is fit to spill into: a directory in which
// no other user can rename or replace what the pool makes there. It must be
// owned by root or by us, and writable by group or others only if sticky,
// as /tmp is. The error does not name dir.
func CheckDir(dir string) error {
	d, err := openDir(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return checkSafe(d)
}

// openDir opens a directory, following symlinks: the caller named it.
func openDir(dir string) (*os.File, error) {
	fd, err := ignoringEINTR(func() (int, error) {
		return unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	})
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), dir), nil
}

func checkSafe(d *os.File) error {
	st, err := d.Stat()
	if err != nil {
		return err
	}
	uid := st.Sys().(*syscall.Stat_t).Uid
	mode := st.Mode()
	switch {
	case !mode.IsDir():
		return errors.New("not a directory")
	case uid != 0 && int(uid) != os.Geteuid():
		return fmt.Errorf("owned by uid %d, who could replace what spoolfs makes there", uid)
	case mode.Perm()&0o022 != 0 && mode&os.ModeSticky == 0:
		return fmt.Errorf("mode %04o: writable by others and not sticky, so they could replace what spoolfs makes there (chmod +t, as /tmp is)", mode.Perm())
	}
	return nil
}

// makePrivateDir checks the spill directory, sweeps what dead pools left
// there (if alive can tell which are dead), and makes and opens a new
// private directory in it.
func makePrivateDir(spillDir string, alive func(pid int) bool) (*privateDir, error) {
	parent, err := openDir(spillDir)
	if err != nil {
		return nil, err
	}
	if err := checkSafe(parent); err != nil {
		parent.Close()
		return nil, err
	}
	if alive != nil {
		sweepDeadDirs(parent, alive)
	}
	dir, name, err := makeOwnDir(parent)
	if err != nil {
		parent.Close()
		return nil, err
	}
	return &privateDir{parent: parent, spillDir: spillDir, dir: dir, name: name, path: spillDir + "/" + name}, nil
}

// makeOwnDir makes a new private directory in parent and opens it.
func makeOwnDir(parent *os.File) (*os.File, string, error) {
	prefix := "spoolfs-" + strconv.Itoa(os.Getpid()) + "-"
	for range 100 {
		name := prefix + strconv.FormatUint(uint64(rand.Uint32()), 10)
		err := withFD(parent, func(pfd int) error { return unix.Mkdirat(pfd, name, 0o700) })
		if errors.Is(err, unix.EEXIST) {
			continue
		}
		if err != nil {
			return nil, "", err
		}
		dir, err := openOwnDir(parent, name)
		if err != nil {
			return nil, "", err
		}
		return dir, name, nil
	}
	return nil, "", errors.New("no free name for a private directory")
}

// openOwnDir opens the directory just made as name in parent, never
// following a symlink, checks that it is ours and sets its mode (the umask
// may have taken bits from mkdir's) through the descriptor.
func openOwnDir(parent *os.File, name string) (*os.File, error) {
	var fd int
	err := withFD(parent, func(pfd int) (err error) {
		fd, err = ignoringEINTR(func() (int, error) {
			return unix.Openat(pfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	dir := os.NewFile(uintptr(fd), name)
	st, err := dir.Stat()
	if err == nil && (!st.IsDir() || int(st.Sys().(*syscall.Stat_t).Uid) != os.Geteuid()) {
		err = fmt.Errorf("%s was replaced as it was made", name)
	}
	if err == nil {
		err = dir.Chmod(0o700) // fchmod
	}
	if err != nil {
		dir.Close()
		return nil, err
	}
	return dir, nil
}

// newFile makes a spill file in the private directory, relative to its
// descriptor; in a new private directory if the old one was removed.
func (d *privateDir) newFile() (*os.File, error) {
	dir, path := d.current()
	f, err := openUnnamedIn(dir, path)
	if err != nil && removed(dir) {
		if dir, path, err = d.renew(dir); err == nil {
			f, err = openUnnamedIn(dir, path)
		}
	}
	return f, err
}

func (d *privateDir) current() (*os.File, string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.dir, d.path
}

func openUnnamedIn(dir *os.File, path string) (*os.File, error) {
	var fd int
	err := withFD(dir, func(dirfd int) (err error) {
		fd, err = openUnnamed(dirfd)
		return err
	})
	if err != nil {
		return nil, &os.PathError{Op: "create spill file in", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path+"/(unnamed)"), nil
}

// removed reports whether dir has been removed from the file system (its
// files, made while it was there, live on).
func removed(dir *os.File) bool {
	var st unix.Stat_t
	err := withFD(dir, func(fd int) error { return unix.Fstat(fd, &st) })
	return err == nil && st.Nlink == 0
}

// renew replaces the removed private directory gone with a new one, unless
// another spill has done so already, and returns the current one.
func (d *privateDir) renew(gone *os.File) (*os.File, string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.dir != gone {
		return d.dir, d.path, nil
	}
	dir, name, err := makeOwnDir(d.parent)
	if err != nil {
		return nil, "", &os.PathError{Op: "make a new private directory in", Path: d.spillDir, Err: err}
	}
	// A spill still using the old descriptor keeps it open until it is
	// done (withFD), so closing it here is safe.
	gone.Close()
	d.dir, d.name, d.path = dir, name, d.spillDir+"/"+name
	return dir, d.path, nil
}

// remove removes the private directory, if its name still leads to it, and
// closes both descriptors. It never follows a symlink, and leaves alone
// whatever someone put in the directory's place.
func (d *privateDir) remove() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	defer d.parent.Close()
	defer d.dir.Close()
	var ours unix.Stat_t
	if err := withFD(d.dir, func(fd int) error { return unix.Fstat(fd, &ours) }); err != nil {
		return err
	}
	if ours.Nlink == 0 {
		return nil // removed by someone else (a tmp cleaner): nothing to do
	}
	err := withFD(d.parent, func(pfd int) error {
		var there unix.Stat_t
		if err := unix.Fstatat(pfd, d.name, &there, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
		if there.Dev != ours.Dev || there.Ino != ours.Ino {
			return errors.New("moved or replaced by someone; left alone")
		}
		return unix.Unlinkat(pfd, d.name, unix.AT_REMOVEDIR)
	})
	if err != nil {
		return fmt.Errorf("spill: removing %s: %w", d.path, err)
	}
	return nil
}

// sweepDeadDirs removes the empty spoolfs-PID-* directories of ours in
// parent whose PID is gone. Removing a directory takes only an empty one,
// so nothing else can be lost; one of another user's is not ours to judge
// (its PID may be of another PID namespace).
func sweepDeadDirs(parent *os.File, alive func(pid int) bool) {
	names, err := parent.Readdirnames(-1)
	if err != nil {
		return
	}
	for _, name := range names {
		rest, ok := strings.CutPrefix(name, "spoolfs-")
		if !ok {
			continue
		}
		pidText, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid == os.Getpid() || alive(pid) {
			continue
		}
		withFD(parent, func(pfd int) error {
			var st unix.Stat_t
			err := unix.Fstatat(pfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
			if err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR || int(st.Uid) != os.Geteuid() {
				return err
			}
			return unix.Unlinkat(pfd, name, unix.AT_REMOVEDIR)
		})
	}
}

// withFD runs fn on f's descriptor, which stays open while fn runs even if
// f is closed meanwhile: a spill racing with the pool's Close can never
// use a descriptor number that has been reused for something else.
func withFD(f *os.File, fn func(fd int) error) error {
	raw, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var fnErr error
	if err := raw.Control(func(fd uintptr) { fnErr = fn(int(fd)) }); err != nil {
		return ErrClosed
	}
	return fnErr
}

// ignoringEINTR retries an open that a signal interrupted, as package os
// does: on a network file system the Go runtime's signals can.
func ignoringEINTR(open func() (int, error)) (int, error) {
	for {
		fd, err := open()
		if err != unix.EINTR {
			return fd, err
		}
	}
}
