package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/hanwen/go-fuse/v2/fuse"

	spoolfs "github.com/spoolfs/spoolfs/fs"
	"github.com/spoolfs/spoolfs/fs/fuseuring"
	"github.com/spoolfs/spoolfs/fs/mounts"
	"github.com/spoolfs/spoolfs/fs/proc"
	"github.com/spoolfs/spoolfs/fs/requests"
	"github.com/spoolfs/spoolfs/fs/sysmem"
	"github.com/spoolfs/spoolfs/quota"
	"github.com/spoolfs/spoolfs/spill"
)

// readyFDEnv names the descriptor on which a daemon child reports to its
// parent: "ok" once mounted, or the error that stopped it.
const readyFDEnv = "SPOOLFS_READY_FD"

// daemonize starts the same command in the background and waits until it
// has mounted (exit 0) or failed (its message, exit 1).
func daemonize(c *mountConfig, args []string, stderr io.Writer) int {
	r, w, err := os.Pipe()
	if err != nil {
		fmt.Fprintf(stderr, "spoolfs mount: %v\n", err)
		return exitFailure
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "spoolfs mount: %v\n", err)
		return exitFailure
	}
	cmd := exec.Command(self, append([]string{"mount", "--foreground"}, args...)...)
	cmd.Env = append(os.Environ(), readyFDEnv+"=3")
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(stderr, "spoolfs mount: start daemon: %v\n", err)
		return exitFailure
	}
	w.Close()
	done := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(r).ReadString('\n')
		done <- strings.TrimSpace(line)
	}()
	select {
	case msg := <-done:
		if msg == "ok" {
			cmd.Process.Release()
			if c.log.file == "" && daemonLogTarget() == "" {
				// Said now, while somebody may read it: a daemon's stderr
				// is /dev/null. Only once mounted: a mount that fails
				// says one line, why it failed.
				fmt.Fprintln(stderr, "spoolfs mount: no journal or syslog socket here, so the daemon's log is discarded (see --log-file)")
			}
			return exitOK
		}
		if msg == "" {
			msg = "the daemon exited before mounting"
		}
		fmt.Fprintf(stderr, "spoolfs mount: %s\n", msg)
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		fmt.Fprintf(stderr, "spoolfs mount: %s did not become ready within 60s\n", c.dir)
	}
	cmd.Wait()
	return exitFailure
}

// readyReporter tells a waiting parent how the mount went, once.
type readyReporter struct{ f *os.File }

// isDaemonChild says whether this process is a daemon that daemonize
// started, with a parent waiting for its report.
func isDaemonChild() bool { return os.Getenv(readyFDEnv) == "3" }

func newReadyReporter() *readyReporter {
	if !isDaemonChild() {
		return &readyReporter{}
	}
	os.Unsetenv(readyFDEnv)
	return &readyReporter{f: os.NewFile(3, "ready")}
}

func (r *readyReporter) report(err error) {
	if r.f == nil {
		return
	}
	msg := "ok"
	if err != nil {
		msg = strings.ReplaceAll(err.Error(), "\n", " ")
	}
	fmt.Fprintln(r.f, msg)
	r.f.Close()
	r.f = nil
	// A daemon keeps nothing of the terminal it was started from.
	if null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0); err == nil {
		for _, fd := range []int{0, 1, 2} {
			syscall.Dup2(int(null.Fd()), fd)
		}
		null.Close()
	}
}

// serve mounts and serves until unmounted or signalled. Every way out goes
// through one shutdown: unmount (detaching and cutting off busy users),
// free every byte in RAM and on disk, exit 0. It calls mounted once the
// mount is made or has failed.
func serve(c *mountConfig, mounted func(), stderr io.Writer) int {
	// Signals are caught from the start: one that comes while we mount, or
	// just after the parent (or systemd) heard we are ready, waits in the
	// channel for the shutdown path instead of killing us mid-way and
	// leaving a dead mount behind.
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(signals)
	logger, closeLog, err := c.log.open(stderr, isDaemonChild())
	ready := newReadyReporter()
	if err != nil {
		mounted()
		ready.report(err)
		fmt.Fprintf(stderr, "spoolfs mount: %v\n", err)
		return exitFailure
	}
	defer closeLog()
	notify := newNotifier()
	raiseFileLimit()
	debug.SetMemoryLimit(memoryLimit(c.spill.RAMBudget, 0)) // then trimMemory's, once a second

	var server *fuse.Server
	var fsys *spoolfs.FS
	var ring *fuseuring.Transport
	tuner := newProcTuner()
	met, err := listenMetrics(c.metrics, logger) // bound before mounting: a port in use fails the mount
	if err == nil {
		server, fsys, ring, err = mount(c, logger, met, tuner)
	}
	mounted()
	ready.report(err)
	if err != nil {
		met.close()
		fmt.Fprintf(stderr, "spoolfs mount: %v\n", err)
		if errors.Is(err, errNoURing) {
			return exitUsage
		}
		return exitFailure
	}
	met.start(fsys)
	logger.Info("mounted", "dir", c.dir, "size", c.limits.Bytes, "ram", c.spill.RAMBudget, "threshold", c.spill.Threshold, "spill_dir", fsys.Pool().Dir())
	notify.send("READY=1", "MAINPID="+strconv.Itoa(os.Getpid()),
		fmt.Sprintf("STATUS=spoolfs mounted at %s (size %s, RAM %s, spill to %s)",
			c.dir, sizeText(c.limits.Bytes), sizeText(c.spill.RAMBudget), c.spill.Dir))

	// What is on top of c.dir now is ours; by the time we shut down,
	// something else may have been mounted over it.
	conn, knowConn := mounts.TopConnection(c.dir)
	served := make(chan struct{}) // closed once the serve loop has ended
	var once sync.Once
	var unmountErr error
	shutdown := func(why string) {
		once.Do(func() {
			logger.Info("shutting down", "dir", c.dir, "why", why)
			notify.send("STOPPING=1", "STATUS=unmounting "+c.dir+" ("+why+")")
			unmount := mounts.Unmount
			if knowConn {
				unmount = func(dir string) error { return mounts.UnmountOwn(dir, conn) }
			}
			if unmountErr = unmount(c.dir); unmountErr != nil {
				logger.Error("unmount", "err", unmountErr)
			} else if knowConn {
				go cutOffCopies(served, c.dir, conn, logger)
			}
		})
	}
	ctx, stopExpiry := context.WithCancel(context.Background())
	defer stopExpiry()
	expiryDone := make(chan struct{})
	go func() {
		defer close(expiryDone)
		fsys.RunExpiry(ctx)
	}()
	go trimMemory(ctx, fsys.Pool(), fsys.InodesUsed)
	if tuner != nil {
		go tuner.run(ctx)
	}
	if c.lifetime > 0 {
		lifetime := time.AfterFunc(c.lifetime, func() { shutdown("lifetime") })
		defer lifetime.Stop()
	}
	go func() {
		for {
			select {
			case sig := <-signals:
				shutdown(sig.String())
			case <-ctx.Done():
				return
			}
		}
	}()

	server.Wait()
	waitRing(ring, logger)
	close(served)
	once.Do(func() { notify.send("STOPPING=1", "STATUS=unmounted "+c.dir) })
	stopExpiry()
	<-expiryDone // an expiry under way finishes before Close frees the rest
	met.close()
	if err := fsys.Close(); err != nil {
		logger.Error("freeing spilled data", "err", err)
		return exitFailure
	}
	if errors.Is(unmountErr, mounts.ErrCovered) {
		return exitFailure // every byte is freed, but a dead mount is left
	}
	logger.Info("unmounted", "dir", c.dir)
	return exitOK
}

// mount makes the pool and the tree from c, adding what exists only at
// run time, and mounts them.
// copyGrace is how long the serve loop may go on after the daemon has
// unmounted its own mount before cutOffCopies takes it for copies held
// elsewhere: an unmount that releases the last copy ends the loop within
// milliseconds.
const copyGrace = 2 * time.Second

// cutOffCopies ends a shutdown that the unmount did not end. A mount
// namespace made after the mount (a container, a service with
// PrivateTmp=) holds a copy of it, which keeps the FUSE connection alive
// after the daemon's own mount is gone: a signal or --lifetime means the
// mount ends, so the connection is aborted, and the copies see ENOTCONN.
// An unmount that somebody else does is not a shutdown, and leaves copies
// served, as tmpfs does.
func cutOffCopies(served <-chan struct{}, dir string, conn uint32, logger *slog.Logger) {
	select {
	case <-served:
	case <-time.After(copyGrace):
		logger.Warn("unmounted here, but another mount namespace still holds the mount: cutting its connection off", "dir", dir)
		if err := mounts.Abort(conn); err != nil {
			logger.Error("abort", "err", err)
		}
	}
}

func mount(c *mountConfig, logger *slog.Logger, met *metrics, tuner *procTuner) (*fuse.Server, *spoolfs.FS, *fuseuring.Transport, error) {
	spillConfig := c.spill
	spillConfig.ProcessAlive = proc.Alive
	if tuner != nil {
		spillConfig.DiskWork = tuner.diskWork
	}
	pool, err := spill.NewPool(spillConfig)
	if err != nil {
		return nil, nil, nil, err
	}
	fsConfig := c.fs
	fsConfig.Pool = pool
	fsConfig.Quota = quota.NewRoot(c.limits)
	// The kernel may keep cached pages of closed RAM-tier files up to an
	// eighth of the RAM budget: re-reads stay fast, and RAM bytes are held
	// twice only within that bound.
	fsConfig.CacheBudget = c.spill.RAMBudget / 8
	fsConfig.Logger = logger
	fsConfig.Observer = met.observer()
	fsConfig.ParseLimits = func(value string, cur spoolfs.Limits) (spoolfs.Limits, error) {
		return parseLiveLimits(value, cur, spillDiskFree(pool), sysmem.Physical())
	}
	fsys, err := spoolfs.New(fsConfig)
	if err != nil {
		pool.Close()
		return nil, nil, nil, err
	}
	opts := fsys.Options()
	opts.AllowOther = c.allowOther
	opts.DirectMount = true
	opts.DirectMountFlags = c.vfsFlags
	opts.Debug = c.debug
	if c.debug {
		trace := log.New(redactingWriter{os.Stderr}, "", log.Lmicroseconds)
		opts.Logger, opts.MountOptions.Logger = trace, trace
	}
	if askURing(c.transport) {
		opts.ExtraCapabilities |= fuse.CAP_OVER_IO_URING
	}
	if err := mounts.ClearDeadMounts(c.dir); err != nil {
		fsys.Close()
		return nil, nil, nil, err
	}
	// What gofs.Mount does (with the umask left to fsys: see RawFS), with
	// every request seen by the tuner and timed when metrics are on.
	server, err := fuse.NewServer(observed(fsys.RawFS(opts), tuner, met), c.dir, &opts.MountOptions)
	if err != nil {
		fsys.Close()
		return nil, nil, nil, fmt.Errorf("mount %s: %w", c.dir, unwrapMountError(err))
	}
	go server.Serve()
	// The rings start between INIT and the first request, which the
	// kernel holds until they are registered.
	ring, transport, err := startTransport(c.transport, server, opts.MaxWrite, logger)
	if err != nil {
		// Requests would wait for rings that will never be: unmount.
		if uerr := server.Unmount(); uerr != nil {
			logger.Error("unmount", "err", uerr)
		}
		server.Wait()
		waitRing(ring, logger)
		fsys.Close()
		return nil, nil, nil, err
	}
	fsys.SetTransport(transport)
	if err := server.WaitMount(); err != nil {
		fsys.Close()
		return nil, nil, nil, fmt.Errorf("mount %s: %w", c.dir, unwrapMountError(err))
	}
	if err := mounts.SetReadahead(c.dir, 1024); err != nil {
		logger.Debug("readahead stays at the kernel's default", "err", err)
	}
	if err := fsys.Mounted(c.dir); err != nil {
		logger.Warn("a session's end will not show as IN_DELETE to watchers of the mount's root", "err", err)
	}
	return server, fsys, ring, nil
}

// ringGrace is how long the io_uring workers may take to end once the
// connection has: the kernel fails their commands as it ends, so they
// end within milliseconds unless a handler is stuck.
const ringGrace = 10 * time.Second

// waitRing waits for the io_uring workers, if any, before the filesystem
// is freed under them.
func waitRing(ring *fuseuring.Transport, logger *slog.Logger) {
	if ring == nil {
		return
	}
	done := make(chan struct{})
	go func() { ring.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(ringGrace):
		logger.Error("io_uring workers still running after the connection ended", "workers", ring.Workers())
	}
}

// observed wraps raw so that the tuner and the metrics, those that are
// there, see every request.
func observed(raw fuse.RawFileSystem, tuner *procTuner, met *metrics) fuse.RawFileSystem {
	switch {
	case tuner == nil && met == nil:
		return raw
	case met == nil:
		return requests.Observe(raw, func(_ requests.Op, caller uint32, _ time.Duration, _ fuse.Status) {
			tuner.observe(caller)
		})
	case tuner == nil:
		return requests.Observe(raw, met.opDone)
	}
	return requests.Observe(raw, func(op requests.Op, caller uint32, took time.Duration, st fuse.Status) {
		tuner.observe(caller)
		met.opDone(op, caller, took, st)
	})
}

func unwrapMountError(err error) error {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return err
}

// raiseFileLimit lifts the soft limit on descriptors to the hard one: the
// spill pool gives a quarter of it (4096 at most) to large spilled files,
// one descriptor each, and open files' handles take their own.
func raiseFileLimit() {
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil && lim.Cur < lim.Max {
		lim.Cur = lim.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
}

func sizeText(n int64) string {
	if n == 0 {
		return "unlimited"
	}
	return humanize.IBytes(uint64(n))
}
