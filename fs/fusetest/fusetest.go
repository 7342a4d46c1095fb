// Package fusetest is the one FUSE test harness of spoolfs: every package
// whose tests mount (fs's own, in-process with a fake clock, and the
// integration tests in test/) builds its mounts through it.
//
// It owns, for a test:
//   - whether FUSE mounts can be made here (Require): without root or
//     /dev/fuse a test skips with the reason, except under CI=true, where
//     it fails, because a skipped suite is not a passing one;
//   - mounting a go-fuse node tree (Mount) with a deadline, past which the
//     connection is aborted through fusectl so that a bug cannot hang the
//     run;
//   - taking it down in t.Cleanup: unmount with a deadline, abort of a
//     stuck connection, then the filesystem's own Close;
//   - checking that nothing is left behind: no mount, no spill file, no
//     descriptor of a spill file or of /dev/fuse (CheckNothingLeft,
//     CheckNoFDLeak); and a mount that another process serves taken down
//     without cutting off somebody else's (UnmountDaemon);
//   - the transport serving a mount: /dev/fuse or FUSE-over-io_uring
//     (Options.Transport, or SPOOLFS_TEST_TRANSPORT for a whole run);
//   - a fake clock (Clock) for tests that move time by hand;
//   - an inotify watcher (Watch, Linux only) that waits for the events a
//     program watching the mount would see.
//
// It imports no spoolfs package that mounts (not fs), so that fs's own
// tests can use it; the mount-table tools it needs are package fs/mounts.
// It holds no global state: everything lives in the test that asked.
package fusetest

import (
	"errors"
	"os"
	"testing"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/spoolfs/spoolfs/fs/fuseuring"
	"github.com/spoolfs/spoolfs/fs/mounts"
)

// Require skips t when FUSE mounts cannot be made here, or fails it under
// CI=true.
func Require(t testing.TB) {
	t.Helper()
	var why string
	switch {
	case os.Geteuid() != 0:
		why = "FUSE tests mount filesystems and need root"
	case !exists("/dev/fuse"):
		why = "/dev/fuse is missing (modprobe fuse, or run in a container with --device /dev/fuse)"
	}
	if why == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true but %s", why)
	}
	t.Skip(why)
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// DefaultDeadline is how long a mount may live when Options.Deadline is 0.
const DefaultDeadline = 2 * time.Minute

// unmountDeadline is how long an unmount may take before the connection is
// aborted: a live server answers in milliseconds, even on a loaded machine.
const unmountDeadline = 20 * time.Second

// Options configures a test mount.
type Options struct {
	// Dir is the mount point; "": a fresh t.TempDir().
	Dir string
	// Deadline is how long the mount may live before its connection is
	// aborted and the test fails; 0: DefaultDeadline.
	Deadline time.Duration
	// SpillDir, if set, must be empty once the filesystem is closed.
	SpillDir string
	// Transport serves the mount's requests: "dev" (reads of /dev/fuse)
	// or "uring" (FUSE-over-io_uring); "": TransportEnv's value, or dev.
	Transport string
}

// TransportEnv names the variable that chooses the transport of every
// test mount that does not choose its own: dev or uring. With uring, a
// mount where the kernel does not offer it skips its test, or fails it
// under CI=true.
const TransportEnv = "SPOOLFS_TEST_TRANSPORT"

// Transport is the transport test mounts use unless they choose one.
func Transport() string {
	if tr := os.Getenv(TransportEnv); tr != "" {
		return tr
	}
	return "dev"
}

// FS is what a test mounts: the root of a go-fuse node tree, its mount
// options, and how to shut the filesystem down once it is unmounted.
type FS struct {
	Root    gofs.InodeEmbedder
	Options *gofs.Options
	// Raw, if set, makes the raw filesystem to serve from the options (as
	// spoolfs's FS.RawFS does), so that a test mounts what the daemon
	// mounts; nil: gofs.NewNodeFS(Root, Options), as gofs.Mount would.
	Raw func(*gofs.Options) fuse.RawFileSystem
	// Mounted, if set, is told the mount point once the mount is up, as
	// the daemon tells spoolfs's FS.
	Mounted func(dir string) error
	Close   func() error // nil: nothing to close
}

// Mounted is a mount made by Mount.
type Mounted struct {
	Dir  string
	Conn uint32 // the kernel's number for the FUSE connection
	// Transport is the one serving the mount: "dev" or "uring".
	Transport string
	t         testing.TB

	server *fuse.Server
	ring   *fuseuring.Transport // nil over dev
	served chan struct{}        // closed when the serve loop has ended
}

// Mount checks that FUSE is there (Require), calls build to make the
// filesystem and mounts it, in this process, on o.Dir. Descriptors are
// counted before build runs, so that the leak check covers what building
// opens too. Cleanup unmounts it (aborting a stuck connection), closes the
// filesystem and checks that nothing is left.
func Mount(t testing.TB, o Options, build func() FS) *Mounted {
	t.Helper()
	Require(t)
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	if o.Deadline == 0 {
		o.Deadline = DefaultDeadline
	}
	fdsBefore := OpenFDs(t)
	fsys := build()
	closeFS := func() {
		if fsys.Close == nil {
			return
		}
		if err := fsys.Close(); err != nil {
			t.Errorf("closing the filesystem: %v", err)
		}
	}
	opts := fsys.Options
	if opts == nil {
		opts = &gofs.Options{}
	}
	opts.DirectMount = true
	opts.AllowOther = true
	if o.Transport == "" {
		o.Transport = Transport()
	}
	switch o.Transport {
	case "dev":
	case "uring":
		opts.ExtraCapabilities |= fuse.CAP_OVER_IO_URING
	default:
		closeFS()
		t.Fatalf("%s=%q: want dev or uring", TransportEnv, o.Transport)
	}
	raw := fsys.Raw
	if raw == nil {
		raw = func(opts *gofs.Options) fuse.RawFileSystem { return gofs.NewNodeFS(fsys.Root, opts) }
	}
	m := &Mounted{Dir: o.Dir, Transport: o.Transport, t: t, served: make(chan struct{})}
	var ringErr error
	startRing := func(server *fuse.Server) {
		if o.Transport == "uring" {
			m.ring, ringErr = fuseuring.Serve(server, opts.MaxWrite, nil)
		}
	}
	var err error
	m.server, err = serve(o.Dir, raw(opts), &opts.MountOptions, startRing)
	if err != nil {
		closeFS()
		t.Fatalf("mount: %v", err)
	}
	go func() { m.server.Wait(); close(m.served) }()
	if m.Conn, err = mounts.ConnectionID(o.Dir); err != nil {
		// Unmount now: a Fatalf here would leave it behind.
		m.unmount()
		closeFS()
		t.Fatalf("connection id: %v", err)
	}
	if ringErr != nil {
		m.unmount()
		closeFS()
		if errors.Is(ringErr, fuseuring.ErrUnavailable) && os.Getenv("CI") != "true" {
			t.Skipf("transport uring: %v", ringErr)
		}
		t.Fatalf("transport uring: %v", ringErr)
	}
	if fsys.Mounted != nil {
		if err := fsys.Mounted(o.Dir); err != nil {
			t.Errorf("telling the filesystem where it is mounted: %v", err)
		}
	}
	watchdog := time.AfterFunc(o.Deadline, func() {
		t.Errorf("test ran past its %v deadline: aborting the FUSE connection", o.Deadline)
		mounts.Abort(m.Conn)
	})
	t.Cleanup(func() {
		watchdog.Stop()
		m.unmount()
		closeFS()
		if o.SpillDir != "" {
			CheckNothingLeft(t, o.Dir, o.SpillDir)
		} else {
			checkUnmounted(t, o.Dir)
		}
		CheckNoFDLeak(t, fdsBefore)
	})
	return m
}

// serve mounts raw on dir and serves it, as gofs.Mount does. It calls
// start between INIT and the first request: over io_uring the kernel
// holds every request until the rings are registered.
func serve(dir string, raw fuse.RawFileSystem, opts *fuse.MountOptions, start func(*fuse.Server)) (*fuse.Server, error) {
	server, err := fuse.NewServer(raw, dir, opts)
	if err != nil {
		return nil, err
	}
	go server.Serve()
	start(server)
	if err := server.WaitMount(); err != nil {
		return nil, err // a mount that failed leaves nothing to unmount
	}
	return server, nil
}

// WaitServed is for a test that unmounted the mount itself: it waits up
// to timeout for the serve loop to end, as it does once the kernel lets
// go of the connection, and fails the test if it does not; Cleanup then
// aborts the connection.
func (m *Mounted) WaitServed(timeout time.Duration) {
	m.t.Helper()
	select {
	case <-m.served:
	case <-time.After(timeout):
		m.t.Errorf("%s still served %v after it was unmounted", m.Dir, timeout)
	}
}

// unmount unmounts with a deadline, aborting the connection if the server
// is stuck, and waits for the serve loop to end.
func (m *Mounted) unmount() {
	t := m.t
	t.Helper()
	select {
	case <-m.served:
		// The serve loop has ended: the test unmounted the mount, or
		// aborted its connection, which leaves it in the mount table,
		// dead, for us to take away.
		if mounts.ConnectionMounted(m.Conn) {
			if err := mounts.UnmountOwn(m.Dir, m.Conn); err != nil {
				t.Errorf("unmount of a mount whose connection ended: %v", err)
			}
		}
		m.waitRing()
		return
	default:
	}
	if !mounts.ConnectionMounted(m.Conn) {
		// The test unmounted it, and it is still served (WaitServed
		// failed): there is nothing to unmount, only a connection to end.
		select {
		case <-m.served:
		case <-time.After(heldElsewhereGrace):
			t.Logf("%s is unmounted but still served: aborting its connection", m.Dir)
			mounts.Abort(m.Conn)
			<-m.served
		}
		m.waitRing()
		return
	}
	done := make(chan error, 1)
	go func() { done <- m.server.Unmount() }()
	deadline := time.After(unmountDeadline)
	poll := time.NewTicker(250 * time.Millisecond)
	defer poll.Stop()
	var goneSince time.Time
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("unmount: %v; detaching", err)
				mounts.Unmount(m.Dir)
			}
			m.server.Wait()
			m.waitRing()
			return
		case <-deadline:
			t.Errorf("unmount of %s hung: aborting its connection", m.Dir)
			mounts.Abort(m.Conn)
			mounts.Unmount(m.Dir)
			m.server.Wait()
			m.waitRing()
			return
		case <-poll.C:
			// Unmounted here, yet still served: a process that made a
			// mount namespace meanwhile (another package's test, a
			// container) holds a copy, which keeps the connection alive
			// until it exits. The test is done with it: cut it off.
			switch {
			case mounts.IsMounted(m.Dir):
				goneSince = time.Time{}
			case goneSince.IsZero():
				goneSince = time.Now()
			case time.Since(goneSince) > heldElsewhereGrace:
				// Not if a mount here uses the number: then ours has
				// ended meanwhile and the number is somebody else's.
				if !mounts.ConnectionMounted(m.Conn) {
					t.Logf("%s is unmounted here but still served (held by another mount namespace?): aborting its connection", m.Dir)
					mounts.Abort(m.Conn)
				}
				goneSince = time.Now().Add(unmountDeadline) // once
			}
		}
	}
}

// waitRing waits for the io_uring workers, which end with the connection.
func (m *Mounted) waitRing() {
	if m.ring == nil {
		return
	}
	done := make(chan struct{})
	go func() { m.ring.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(unmountDeadline):
		m.t.Errorf("io_uring workers of %s still running %v after the connection ended", m.Dir, unmountDeadline)
	}
}

// Ring is the io_uring transport serving the mount; nil over dev.
func (m *Mounted) Ring() *fuseuring.Transport { return m.ring }

// heldElsewhereGrace is how long an unmounted connection may go on being
// served before the harness takes it for a copy held by another mount
// namespace. The serve loops end within milliseconds of an unmount that
// releases the last copy.
const heldElsewhereGrace = 3 * time.Second

// Abort cuts the mount's FUSE connection off: every pending and future
// request fails. It is how a test gets out of a deadlock it detected.
func (m *Mounted) Abort() error { return mounts.Abort(m.Conn) }

// UnmountDaemon takes down the mount on dir that another process serves
// (a spoolfs daemon), if it is still there: an unmount, then an abort of
// its connection if that is still the one mounted. Connection numbers are
// reused at once, so an abort after the mount has gone could cut off
// somebody else's new mount.
func UnmountDaemon(dir string) {
	if !mounts.IsMounted(dir) {
		return
	}
	id, idErr := mounts.ConnectionID(dir)
	mounts.Unmount(dir)
	if idErr == nil && mounts.IsMounted(dir) {
		mounts.Abort(id)
	}
}
