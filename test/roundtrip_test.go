package test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/spoolfs/spoolfs/fs/mounts"
)

// What one FUSE round trip costs spoolfs, side by side with tmpfs (no round
// trip at all) and, where it builds, scripts/bench-ref (a minimal C daemon
// on libfuse's low-level API over a tmpfs): a floor for what any daemon on
// /dev/fuse pays. `make bench` runs it:
//
//	go test -run '^$' -bench RoundTrip -count 5 ./test/
//
// Each operation runs on every system in turn, in chunks, so that a noisy
// moment on the machine hits all of them alike. ns/op is spoolfs's; the
// other systems' figures and the ratios are extra metrics: tmpfs-ns/op,
// cref-ns/op, x-tmpfs and x-cref (spoolfs's time per operation over theirs).
// cpu-ns/op and cref-cpu-ns/op are the CPU time the daemon itself spent per
// operation (all its threads, from /proc): what "the daemon's own cost"
// means, and steadier than wall time on a busy machine, where the time a
// round trip waits for a CPU swamps what either daemon does.
// SPOOLFS_ROUNDTRIP_FLAGS adds mount flags (space-separated) to spoolfs's,
// e.g. "--transport uring"; SPOOLFS_ROUNDTRIP_ENV adds variables to its
// environment, e.g. "GOMAXPROCS=2". SPOOLFS_ROUNDTRIP_BASE names another
// spoolfs binary (say, a build of main) to run beside this one, in the same
// chunks, as "base": a change to the request path shows as x-base and
// base-cpu-ns/op against cpu-ns/op, free of the drift between two runs.

// roundTripChunk is how many operations one system runs before the next
// takes its turn: long enough that the switch costs nothing measurable,
// short enough that load on the machine lands on every system alike.
const roundTripChunk = 200

// rtSystem is one filesystem the benchmark compares, mounted at dir.
type rtSystem struct {
	name   string
	dir    string // a directory of its own inside the mount
	daemon int    // its daemon's PID; 0: in the kernel
}

// rtOp is one operation: setup prepares a system's directory and returns
// the operation, which does one round trip's worth of work on call i.
type rtOp struct {
	name  string
	skip  func(sys rtSystem) bool // nil: runs everywhere
	setup func(b *testing.B, dir string) func(i int) error
}

var rtOps = []rtOp{
	{
		// One GETXATTR, answered "no such attribute". The C reference has no
		// xattrs (ENOSYS), so the kernel stops asking it: no round trip there.
		name: "getxattr",
		skip: func(sys rtSystem) bool { return sys.name == "cref" },
		setup: func(b *testing.B, dir string) func(int) error {
			p := filepath.Join(dir, "xattr")
			writeFile(b, p, nil)
			buf := make([]byte, 64)
			return func(int) error {
				_, err := unix.Getxattr(p, "user.roundtrip", buf)
				if errors.Is(err, unix.ENODATA) {
					return nil
				}
				return fmt.Errorf("getxattr: %v, want ENODATA", err)
			}
		},
	},
	{
		// One WRITE of 4 KiB into a 1 MiB window of an open file.
		name: "pwrite4k",
		setup: func(b *testing.B, dir string) func(int) error {
			fd, err := unix.Open(filepath.Join(dir, "pwrite"), unix.O_RDWR|unix.O_CREAT|unix.O_TRUNC|unix.O_CLOEXEC, 0o644)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { unix.Close(fd) })
			buf := make([]byte, 4096)
			return func(i int) error {
				n, err := unix.Pwrite(fd, buf, int64(i%256)*4096)
				if err == nil && n != len(buf) {
					err = fmt.Errorf("short write: %d", n)
				}
				return err
			}
		},
	},
	{
		// One WRITE of 4 KiB at the end of a file that grows (as fio's and
		// cp's sequential writes do), cut back to empty every 64 MiB.
		name: "append4k",
		setup: func(b *testing.B, dir string) func(int) error {
			fd, err := unix.Open(filepath.Join(dir, "append"), unix.O_RDWR|unix.O_CREAT|unix.O_TRUNC|unix.O_CLOEXEC, 0o644)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { unix.Close(fd) })
			buf := make([]byte, 4096)
			const wrap = 16384
			return func(i int) error {
				if i%wrap == 0 {
					if err := unix.Ftruncate(fd, 0); err != nil {
						return err
					}
				}
				n, err := unix.Pwrite(fd, buf, int64(i%wrap)*4096)
				if err == nil && n != len(buf) {
					err = fmt.Errorf("short write: %d", n)
				}
				return err
			}
		},
	},
	{
		// create, close, unlink: LOOKUP, CREATE, FLUSH, UNLINK (RELEASE after).
		name: "create-unlink",
		setup: func(b *testing.B, dir string) func(int) error {
			p := filepath.Join(dir, "new")
			return func(int) error {
				fd, err := unix.Open(p, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o644)
				if err != nil {
					return err
				}
				if err := unix.Close(fd); err != nil {
					return err
				}
				return unix.Unlink(p)
			}
		},
	},
}

func BenchmarkRoundTrip(b *testing.B) {
	requireFUSE(b)
	systems := []rtSystem{benchSpoolfs(b, "spoolfs", plainBinary.get(b)), {name: "tmpfs", dir: benchTmpfs(b)}}
	if base := os.Getenv("SPOOLFS_ROUNDTRIP_BASE"); base != "" {
		systems = append(systems, benchSpoolfs(b, "base", base))
	}
	if sys, ok := benchCRef(b); ok {
		systems = append(systems, sys)
	}
	for _, op := range rtOps {
		b.Run(op.name, func(b *testing.B) {
			var run []rtSystem
			var calls []func(int) error
			for _, sys := range systems {
				if op.skip != nil && op.skip(sys) {
					continue
				}
				dir := filepath.Join(sys.dir, op.name)
				if err := os.Mkdir(dir, 0o755); err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { os.RemoveAll(dir) })
				run = append(run, sys)
				calls = append(calls, op.setup(b, dir))
			}
			spent := make([]time.Duration, len(run))
			cpu0 := make([]time.Duration, len(run))
			for s, sys := range run {
				cpu0[s] = processCPU(b, sys.daemon)
			}
			b.ResetTimer()
			for start := 0; start < b.N; start += roundTripChunk {
				end := min(start+roundTripChunk, b.N)
				// Rotate which system goes first, chunk by chunk.
				for k := range run {
					s := (k + start/roundTripChunk) % len(run)
					t0 := time.Now()
					for i := start; i < end; i++ {
						if err := calls[s](i); err != nil {
							b.Fatalf("%s on %s: %v", op.name, run[s].name, err)
						}
					}
					spent[s] += time.Since(t0)
				}
			}
			b.StopTimer()
			perOp := map[string]float64{}
			for s, sys := range run {
				perOp[sys.name] = float64(spent[s].Nanoseconds()) / float64(b.N)
				if sys.daemon != 0 {
					perOp[sys.name+"-cpu"] = float64((processCPU(b, sys.daemon) - cpu0[s]).Nanoseconds()) / float64(b.N)
				}
			}
			b.ReportMetric(perOp["spoolfs"], "ns/op")
			b.ReportMetric(perOp["spoolfs-cpu"], "cpu-ns/op")
			for _, other := range []string{"tmpfs", "cref", "base"} {
				if ns, ok := perOp[other]; ok {
					b.ReportMetric(ns, other+"-ns/op")
					b.ReportMetric(perOp["spoolfs"]/ns, "x-"+other)
				}
				if ns, ok := perOp[other+"-cpu"]; ok {
					b.ReportMetric(ns, other+"-cpu-ns/op")
				}
			}
		})
	}
}

// benchSpoolfs mounts spoolfs binary bin (the build without -race: what
// users run), every file in RAM, as its own process, with a session
// directory to work in.
func benchSpoolfs(b *testing.B, name, bin string) rtSystem {
	dir, spillDir := b.TempDir(), b.TempDir()
	args := []string{"mount", "-f", "--ram", "1GiB", "--spill-threshold", "512MiB", "--spill-dir", spillDir}
	args = append(args, strings.Fields(os.Getenv("SPOOLFS_ROUNDTRIP_FLAGS"))...)
	env := strings.Fields(os.Getenv("SPOOLFS_ROUNDTRIP_ENV"))
	d := startBinary(b, bin, env, dir, os.Stderr, append(args, dir)...)
	return rtSystem{name: name, dir: benchSubdir(b, dir), daemon: d.cmd.Process.Pid}
}

// processCPU is the CPU time all threads of process pid have run, from
// their schedstat (nanoseconds, unlike the clock ticks of stat); 0 for pid 0.
func processCPU(b *testing.B, pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(tasks) == 0 {
		b.Fatalf("no threads of process %d in /proc: %v", pid, err)
	}
	var total time.Duration
	for _, p := range tasks {
		data, err := os.ReadFile(p)
		if err != nil {
			continue // the thread has just exited
		}
		var ns int64
		if _, err := fmt.Sscan(string(data), &ns); err != nil {
			b.Fatalf("%s: %q: %v", p, data, err)
		}
		total += time.Duration(ns)
	}
	return total
}

// benchTmpfs mounts a tmpfs of its own.
func benchTmpfs(b *testing.B) string {
	dir := b.TempDir()
	if err := unix.Mount("roundtrip", dir, "tmpfs", 0, "size=256m"); err != nil {
		b.Fatalf("mount tmpfs: %v", err)
	}
	b.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			b.Errorf("unmount tmpfs %s: %v", dir, err)
		}
	})
	return benchSubdir(b, dir)
}

// benchCRef builds scripts/bench-ref and mounts it over a tmpfs of its own;
// false (and a log line) when cc, pkg-config or libfuse3-dev is missing.
func benchCRef(b *testing.B) (rtSystem, bool) {
	cflags, err := exec.Command("pkg-config", "--cflags", "--libs", "fuse3").Output()
	if err != nil {
		b.Logf("no C reference: pkg-config fuse3 failed (%v); apt-get install pkg-config libfuse3-dev", err)
		return rtSystem{}, false
	}
	bin := filepath.Join(b.TempDir(), "bench-ref")
	args := append([]string{"-O2", "-o", bin, "../scripts/bench-ref/bench-ref.c"}, strings.Fields(string(cflags))...)
	if out, err := exec.Command("cc", args...).CombinedOutput(); err != nil {
		b.Logf("no C reference: cc failed: %v\n%s", err, out)
		return rtSystem{}, false
	}
	src, dir := benchTmpfs(b), b.TempDir()
	cmd := exec.Command(bin, "-t", "3600", src, dir) // spoolfs's hour-long timeouts
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	b.Cleanup(func() {
		if mounts.IsMounted(dir) {
			if err := mounts.Unmount(dir); err != nil {
				b.Errorf("unmount %s: %v", dir, err)
			}
		}
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			b.Errorf("bench-ref did not exit after unmount")
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for !mounts.IsMounted(dir) {
		select {
		case err := <-exited:
			exited <- err // for the cleanup
			b.Fatalf("bench-ref exited before it mounted: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			b.Fatal("bench-ref did not mount in 30 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return rtSystem{name: "cref", dir: benchSubdir(b, dir), daemon: cmd.Process.Pid}, true
}

// benchSubdir makes the directory the operations run in (on spoolfs, a
// session).
func benchSubdir(b *testing.B, mnt string) string {
	dir := filepath.Join(mnt, "roundtrip")
	if err := os.Mkdir(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	return dir
}
