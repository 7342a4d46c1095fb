//go:build linux

package fs

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/spoolfs/spoolfs/fs/control"
	"github.com/spoolfs/spoolfs/fs/fusetest"
)

// makeDueSessions makes n sessions of a file or two each, all due to end
// at the same instant an hour from now, and waits until no file in the
// mount is open: RELEASE is asynchronous to close(2), and a file still
// open would outlive its session's end.
func makeDueSessions(tb testing.TB, m *sessMount, n int) {
	tb.Helper()
	var wg sync.WaitGroup
	const makers = 4 // the kernel serialises creations per directory only
	errs := make(chan error, makers)
	for w := range makers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += makers {
				s := m.path(fmt.Sprintf("s%d", i))
				if err := os.Mkdir(s, 0o755); err != nil {
					errs <- err
					return
				}
				for j := range 1 + i%2 {
					if err := os.WriteFile(filepath.Join(s, fmt.Sprintf("f%d", j)), []byte("spoolfs"), 0o644); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		tb.Fatal(err)
	}
	fusetest.WaitFor(tb, time.Minute, "every file released", func() bool {
		m.f.sessions.mu.Lock()
		defer m.f.sessions.mu.Unlock()
		for s := range m.f.sessions.live {
			if s.opens.Load() != 0 {
				return false
			}
		}
		return true
	})
}

// endCounter is an Observer that counts the sessions ended.
type endCounter struct{ ended atomic.Int64 }

func (c *endCounter) SessionEnded(string)   { c.ended.Add(1) }
func (c *endCounter) Refused(syscall.Errno) {}
func (c *endCounter) CacheFilled(int64)     {}

// TestSessionMassExpiryGivesWay: while thousands of sessions end at once,
// a goroutine that becomes ready to run, as a request's goroutine does when
// the kernel hands it a request, runs after a few sessions' worth of the
// work; not once the scheduler takes the CPU from the expiry loop, 10 ms
// and hundreds of sessions later. It runs with GOMAXPROCS=1, as the daemon
// does while one process calls it. The goroutine sleeps 50 µs at a time
// and counts the sessions that ended meanwhile: counted in sessions, not
// in time, the bound holds whatever the machine's load (which slows both
// sides alike). BenchmarkSessionMassExpiry measures what it means for stat
// and readdir.
func TestSessionMassExpiryGivesWay(t *testing.T) {
	counter := &endCounter{}
	m := mountSessions(t, sessOpts{policy: control.SessionPolicy{TTL: time.Hour}, observer: counter, deadline: 5 * time.Minute})
	const n = 2000
	makeDueSessions(t, m, n)
	m.clock.Advance(time.Hour + time.Second)

	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	stop := make(chan struct{})
	worst := make(chan int64)
	go func() {
		var most int64
		for {
			select {
			case <-stop:
				worst <- most
				return
			default:
			}
			before := counter.ended.Load()
			time.Sleep(50 * time.Microsecond)
			most = max(most, counter.ended.Load()-before)
		}
	}()
	m.expire()
	close(stop)
	most := <-worst
	if got := counter.ended.Load(); got != n {
		t.Fatalf("%d sessions ended, want %d", got, n)
	}
	t.Logf("while a goroutine slept 50 µs and waited for the CPU, at most %d sessions ended", most)
	// Without the pacer, 200-800 (with and without -race); with it, 10-30.
	const bound = 64
	if most > bound {
		t.Errorf("while a goroutine slept 50 µs and waited for the CPU, %d sessions ended: want at most %d", most, bound)
	}
}

// BenchmarkSessionMassExpiry: 10,000 sessions of a file or two end at the
// same instant while another process stats and lists a live session, with
// a pause of 2 ms between rounds, as a program that does some work of its
// own would; it reports the latencies of those operations while the
// sessions were freed, and for comparison during a quiet second before.
// Run it with -cpu 1,2: the daemon runs Go code on one CPU while one
// process calls it.
func BenchmarkSessionMassExpiry(b *testing.B) {
	for range b.N {
		r := endManySessions(b, 10000)
		b.ReportMetric(float64(r.ending.quantile(0.5).Microseconds()), "p50-µs")
		b.ReportMetric(float64(r.ending.quantile(0.99).Microseconds()), "p99-µs")
		b.ReportMetric(float64(r.ending.quantile(1).Microseconds()), "max-µs")
		b.ReportMetric(float64(r.quiet.quantile(0.99).Microseconds()), "quiet-p99-µs")
		b.ReportMetric(float64(r.quiet.quantile(1).Microseconds()), "quiet-max-µs")
		b.ReportMetric(float64(r.freed.Milliseconds()), "freed-ms")
		b.ReportMetric(float64(r.told.Milliseconds()), "told-ms")
		b.Logf("10000 sessions: bytes freed in %v, the kernel told in %v\nquiet second before:%v\nuntil the kernel was told:%v",
			r.freed.Round(time.Millisecond), r.told.Round(time.Millisecond), r.quiet, r.ending)
	}
}

// massEnd is what one mass expiry cost.
type massEnd struct {
	freed  time.Duration // until the bytes were freed and the sessions hidden
	told   time.Duration // until the kernel had heard of every one
	quiet  probeResults  // the prober's operations in a quiet second before
	ending probeResults  // its operations until the kernel was told
}

// endManySessions makes n sessions due at once and a live one, then ends
// the n while a prober works on the live one.
func endManySessions(b *testing.B, n int) massEnd {
	m := mountSessions(b, sessOpts{policy: control.SessionPolicy{TTL: time.Hour}, deadline: 10 * time.Minute})
	makeDueSessions(b, m, n)
	m.clock.Advance(time.Minute) // live ends a minute after the others
	live := m.mkSession("live")
	for j := range 20 {
		sessWriteN(b, filepath.Join(live, fmt.Sprintf("f%d", j)), 4096)
	}
	m.waitOpens(m.mustSession("live"), 0)
	liveUsage := m.mustSession("live").acct.Usage()

	probe := startProber(b, live)
	quietStart := time.Now()
	time.Sleep(time.Second) // a window to measure, not a wait for anything
	m.clock.Advance(time.Hour - time.Minute + time.Second)
	start := time.Now()
	m.f.sessions.expireDue(m.clock.Now())
	r := massEnd{freed: time.Since(start)}
	if u := m.root.Usage(); u.Bytes != liveUsage.Bytes || u.Inodes != sessBaseline.Inodes+liveUsage.Inodes {
		b.Fatalf("root usage %+v once the sessions ended, want the live session's %+v and the root", u, liveUsage)
	}
	m.waitReaped()
	r.told = time.Since(start)
	m.wantAlive("live")
	for _, op := range probe.stop() {
		switch {
		case op.start.Before(start) && !op.start.Before(quietStart):
			r.quiet = append(r.quiet, op)
		case !op.start.Before(start) && op.start.Before(start.Add(r.told)):
			r.ending = append(r.ending, op)
		}
	}
	if len(r.ending) == 0 {
		b.Fatal("the prober did nothing while the sessions ended")
	}
	return r
}

// probeResult is one operation of the prober: which, when, how long.
type probeResult struct {
	op    string
	start time.Time
	dur   time.Duration
}

type probeResults []probeResult

// quantile returns the q-quantile of the latencies.
func (rs probeResults) quantile(q float64) time.Duration {
	if len(rs) == 0 {
		return 0
	}
	durs := make([]time.Duration, len(rs))
	for i, r := range rs {
		durs[i] = r.dur
	}
	slices.Sort(durs)
	return durs[min(int(q*float64(len(durs))), len(durs)-1)]
}

// String gives the quantiles of each kind of operation.
func (rs probeResults) String() string {
	var s strings.Builder
	for _, op := range []string{"stat", "statx-sync", "readdir"} {
		only := probeResults(slices.DeleteFunc(slices.Clone(rs), func(r probeResult) bool { return r.op != op }))
		fmt.Fprintf(&s, "\n\t%-10s %5d: p50 %v, p99 %v, max %v", op, len(only),
			only.quantile(0.5).Round(time.Microsecond), only.quantile(0.99).Round(time.Microsecond),
			only.quantile(1).Round(time.Microsecond))
	}
	return s.String()
}

// prober is a child process that stats and lists a directory in a loop: a
// process of its own, so that what it measures is the mount and not this
// process's scheduler.
type prober struct {
	tb     testing.TB
	cmd    *exec.Cmd
	stdin  io.Closer
	lines  *bufio.Scanner
	stderr *fusetest.LogBuffer
}

func startProber(tb testing.TB, dir string) *prober {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestSessionProbeHelper$")
	cmd.Env = append(os.Environ(), "SPOOLFS_PROBE_HELPER="+dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	p := &prober{tb: tb, cmd: cmd, stdin: stdin, lines: bufio.NewScanner(stdout), stderr: &fusetest.LogBuffer{}}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() }) // before the unmount
	if !p.lines.Scan() || p.lines.Text() != "started" {
		tb.Fatalf("prober did not start: %q\nstderr: %s", p.lines.Text(), p.stderr.String())
	}
	return p
}

// stop ends the prober and returns what it did.
func (p *prober) stop() probeResults {
	p.tb.Helper()
	p.stdin.Close()
	var rs probeResults
	for p.lines.Scan() {
		f := strings.Fields(p.lines.Text())
		if len(f) != 3 {
			p.tb.Fatalf("prober said %q", p.lines.Text())
		}
		start, err1 := strconv.ParseInt(f[1], 10, 64)
		dur, err2 := strconv.ParseInt(f[2], 10, 64)
		if err1 != nil || err2 != nil {
			p.tb.Fatalf("prober said %q", p.lines.Text())
		}
		rs = append(rs, probeResult{f[0], time.Unix(0, start), time.Duration(dur)})
	}
	if err := p.cmd.Wait(); err != nil {
		p.tb.Fatalf("prober: %v\nstderr: %s", err, p.stderr.String())
	}
	return rs
}

// TestSessionProbeHelper is the prober of BenchmarkSessionMassExpiry: until
// stdin closes it stats a file of the directory (from the kernel's cache,
// and from the daemon with AT_STATX_FORCE_SYNC) and lists the directory,
// then prints each operation's kind, start (Unix ns) and duration (ns).
func TestSessionProbeHelper(t *testing.T) {
	dir := os.Getenv("SPOOLFS_PROBE_HELPER")
	if dir == "" {
		t.Skip("the child process of BenchmarkSessionMassExpiry")
	}
	if err := probe(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

func probe(dir string) error {
	stop := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(stop)
	}()
	var out []string
	timed := func(op string, fn func() error) error {
		start := time.Now()
		err := fn()
		out = append(out, fmt.Sprintf("%s %d %d", op, start.UnixNano(), time.Since(start)))
		return err
	}
	file := filepath.Join(dir, "f0")
	fmt.Println("started")
	for {
		select {
		case <-stop:
			_, err := fmt.Println(strings.Join(out, "\n"))
			return err
		case <-time.After(2 * time.Millisecond):
		}
		var st unix.Stat_t
		var stx unix.Statx_t
		err := timed("stat", func() error { return unix.Lstat(file, &st) })
		if err == nil {
			err = timed("statx-sync", func() error {
				return unix.Statx(unix.AT_FDCWD, file, unix.AT_SYMLINK_NOFOLLOW|unix.AT_STATX_FORCE_SYNC, unix.STATX_BASIC_STATS, &stx)
			})
		}
		if err == nil {
			err = timed("readdir", func() error {
				entries, err := os.ReadDir(dir)
				if err == nil && len(entries) != 20 {
					err = fmt.Errorf("readdir %s: %d entries, want 20", dir, len(entries))
				}
				return err
			})
		}
		if err != nil {
			return err
		}
	}
}

// TestSessionMassExpiryUnmount: the mount goes while the reaper is still
// telling the kernel of a thousand sessions that ended; the unmount does
// not wait for it, and everything is freed all the same.
func TestSessionMassExpiryUnmount(t *testing.T) {
	var m *sessMount
	t.Cleanup(func() { // after the unmount and Close that mountSessions registers
		if m == nil {
			return // skipped: no FUSE here
		}
		if st := m.pool.Stats(); st.Files != 0 || st.RAMBytes != 0 || st.DiskBytes != 0 {
			t.Errorf("after Close the pool still holds %+v", st)
		}
		if _, err := os.Stat(m.pool.Dir()); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("spill directory after Close: %v", err)
		}
	})
	m = mountSessions(t, sessOpts{policy: control.SessionPolicy{TTL: time.Hour}, spillAll: true})
	makeDueSessions(t, m, 1000)
	m.clock.Advance(time.Hour + time.Second)
	m.f.sessions.expireDue(m.clock.Now())
	if m.f.sessions.reaper.idle() {
		t.Log("the reaper was done before the unmount: nothing cut short")
	}
}
