package test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/spoolfs/spoolfs/fs/mounts"

	"github.com/spoolfs/spoolfs/fs/fusetest"
)

// TestMetrics mounts the binary with --metrics and checks that each figure
// moves with what is done to the mount: RAM and spilled files, a session
// that ends for idleness and one that is removed, ENOSPC and EDQUOT, and
// the request histograms.
func TestMetrics(t *testing.T) {
	addr := freeLoopbackAddr(t)
	m := mountBinary(t, "--metrics", addr, "--spill-threshold", "64KiB", "--size", "1MiB")
	sc := &metricsScraper{url: "http://" + addr + "/metrics"}

	if got := sc.get(t, "spoolfs_capacity_bytes"); got != 1<<20 {
		t.Errorf("spoolfs_capacity_bytes = %v, want %d", got, 1<<20)
	}
	if got := sc.get(t, "spoolfs_inodes_used"); got != 1 {
		t.Errorf("spoolfs_inodes_used = %v on an empty mount, want 1 (the root)", got)
	}
	if got := sc.get(t, "spoolfs_transport_info", "transport", fusetest.Transport()); got != 1 {
		t.Errorf("spoolfs_transport_info{transport=%q} = %v, want 1", fusetest.Transport(), got)
	}
	for _, reason := range []string{"ttl", "idle", "owner-exited", "removed"} {
		if got := sc.get(t, "spoolfs_sessions_ended_total", "reason", reason); got != 0 {
			t.Errorf("sessions ended for %s = %v before any session", reason, got)
		}
	}

	// A small file stays in RAM.
	if err := os.WriteFile(filepath.Join(m.Dir, "small"), make([]byte, 16<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	sc.waitFor(t, "spoolfs_ram_bytes >= 16KiB", func(s metricSamples) bool {
		return s.value("spoolfs_ram_bytes") >= 16<<10 && s.value("spoolfs_files") == 1
	})
	if got := sc.get(t, "spoolfs_spills_total"); got != 0 {
		t.Errorf("spoolfs_spills_total = %v before any file passed the threshold", got)
	}

	// A file past the threshold spills.
	if err := os.WriteFile(filepath.Join(m.Dir, "big"), make([]byte, 256<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	sc.waitFor(t, "a spill", func(s metricSamples) bool {
		return s.value("spoolfs_spills_total") >= 1 && s.value("spoolfs_disk_bytes") >= 256<<10 &&
			s.value("spoolfs_spilled_files") == 1 && s.value("spoolfs_allocated_bytes") >= (256+16)<<10 &&
			s.value("spoolfs_inodes_used") == 3
	})

	// A small read of it misses the page cache (a write-only write left
	// nothing there): while it is open, the daemon stores the file there.
	if got := sc.get(t, "spoolfs_cache_filled_bytes_total"); got != 0 {
		t.Errorf("spoolfs_cache_filled_bytes_total = %v before any read", got)
	}
	reader := readRandom(t, filepath.Join(m.Dir, "big"), 64<<10, 4096)
	sc.waitFor(t, "the cache fill of the spilled file", func(s metricSamples) bool {
		if s.value("spoolfs_cache_filled_bytes_total") >= 256<<10 {
			return true
		}
		// Miss again: the first read may have come before the daemon
		// saw the writer's handle go (RELEASE follows close(2)), and a
		// file open for writing is not filled.
		if err := unix.Fadvise(int(reader.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
			t.Fatal(err)
		}
		if _, err := reader.ReadAt(make([]byte, 4096), 64<<10); err != nil {
			t.Fatal(err)
		}
		return false
	})
	reader.Close()

	// A session with --idle 1s ends by itself.
	code, stdout, stderr := runSpoolfs(t, "session", "new", m.Dir, "--idle", "1s")
	if code != 0 {
		t.Fatalf("session new: exit %d: %s", code, stderr)
	}
	idle := strings.TrimSpace(stdout)
	sc.waitFor(t, "the idle session to end", func(s metricSamples) bool {
		return s.value("spoolfs_sessions_ended_total", "reason", "idle") == 1 && s.value("spoolfs_sessions_live") == 0
	})
	if _, err := os.Stat(idle); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the idle session %s is still there: %v", idle, err)
	}

	// EDQUOT in a session with a quota; then rmdir ends it: "removed".
	code, stdout, stderr = runSpoolfs(t, "session", "new", m.Dir, "--size", "64KiB")
	if code != 0 {
		t.Fatalf("session new: exit %d: %s", code, stderr)
	}
	sess := strings.TrimSpace(stdout)
	if got := sc.get(t, "spoolfs_sessions_live"); got != 1 {
		t.Errorf("spoolfs_sessions_live = %v with one session, want 1", got)
	}
	err := os.WriteFile(filepath.Join(sess, "f"), make([]byte, 128<<10), 0o644)
	if !errors.Is(err, syscall.EDQUOT) {
		t.Fatalf("writing 128KiB into a 64KiB session: %v, want EDQUOT", err)
	}
	sc.waitFor(t, "an EDQUOT refusal", func(s metricSamples) bool {
		return s.value("spoolfs_quota_refusals_total", "errno", "EDQUOT") >= 1
	})
	if err := os.Remove(filepath.Join(sess, "f")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(sess); err != nil {
		t.Fatal(err)
	}
	sc.waitFor(t, "the removed session to count", func(s metricSamples) bool {
		return s.value("spoolfs_sessions_ended_total", "reason", "removed") == 1 && s.value("spoolfs_sessions_live") == 0
	})

	// ENOSPC past the mount's size.
	err = os.WriteFile(filepath.Join(m.Dir, "huge"), make([]byte, 2<<20), 0o644)
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("writing 2MiB to a 1MiB mount: %v, want ENOSPC", err)
	}
	sc.waitFor(t, "an ENOSPC refusal", func(s metricSamples) bool {
		return s.value("spoolfs_quota_refusals_total", "errno", "ENOSPC") >= 1 &&
			s.value("spoolfs_fuse_errors_total", "op", "WRITE", "errno", "ENOSPC") >= 1
	})

	// Requests: a name never seen makes a LOOKUP (answered with a
	// negative entry, not an error, as the kernel may cache it).
	lookups := sc.get(t, "spoolfs_fuse_request_duration_seconds_count", "op", "LOOKUP")
	if _, err := os.Stat(filepath.Join(m.Dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stat of a missing name: %v", err)
	}
	s := sc.waitFor(t, "one more LOOKUP", func(s metricSamples) bool {
		return s.value("spoolfs_fuse_request_duration_seconds_count", "op", "LOOKUP") > lookups
	})
	for _, op := range []string{"LOOKUP", "CREATE", "WRITE", "SETXATTR", "MKDIR", "RMDIR"} {
		count := s.value("spoolfs_fuse_request_duration_seconds_count", "op", op)
		if count == 0 {
			t.Errorf("no %s requests counted", op)
		}
		if inf := s.value("spoolfs_fuse_request_duration_seconds_bucket", "op", op, "le", "+Inf"); inf != count {
			t.Errorf("%s: +Inf bucket %v, count %v", op, inf, count)
		}
		buckets := 0
		for _, m := range s {
			if m.name == "spoolfs_fuse_request_duration_seconds_bucket" && m.labels["op"] == op {
				buckets++
			}
		}
		if buckets != 17 {
			t.Errorf("%s: %d buckets, want 16 from 10µs to 1s and +Inf", op, buckets)
		}
	}
	if got := s.value("spoolfs_fuse_request_duration_seconds_sum", "op", "WRITE"); got <= 0 {
		t.Errorf("WRITE latency sum %v", got)
	}

	// Unmounting stops the metrics server with the daemon.
	if code, _, stderr := runSpoolfs(t, "umount", m.Dir); code != 0 {
		t.Fatalf("umount: exit %d: %s", code, stderr)
	}
	m.waitGone(t)
	if _, err := sc.scrape(); err == nil {
		t.Error("metrics still served after unmounting")
	}
}

// TestMetricsBindFailure: a --metrics port in use fails the mount with
// exit 1 and one clear line; nothing is mounted and no daemon is left.
func TestMetricsBindFailure(t *testing.T) {
	requireFUSE(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dir := t.TempDir()
	code, _, stderr := runSpoolfs(t, "mount", "--spill-dir", t.TempDir(), "--metrics", ln.Addr().String(), dir)
	if code != 1 {
		t.Errorf("exit %d, want 1 (%s)", code, stderr)
	}
	if strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "--metrics "+ln.Addr().String()) ||
		!strings.Contains(stderr, "address already in use") {
		t.Errorf("want one line naming --metrics and the address in use, got %q", stderr)
	}
	if mounts.IsMounted(dir) {
		mounts.Unmount(dir)
		t.Error("mounted although the metrics port was taken")
	}
	if pid := daemonPID(dir); pid != 0 {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Errorf("daemon %d left running", pid)
	}
}

// freeLoopbackAddr finds a free port on 127.0.0.1 by listening on port 0
// and closing again: spoolfs then binds it.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// metricSample is one line of the Prometheus text format.
type metricSample struct {
	name   string
	labels map[string]string
	value  float64
}

type metricSamples []metricSample

// value sums the samples of name whose labels include the given pairs.
func (s metricSamples) value(name string, kv ...string) float64 {
	var sum float64
next:
	for _, m := range s {
		if m.name != name {
			continue
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if m.labels[kv[i]] != kv[i+1] {
				continue next
			}
		}
		sum += m.value
	}
	return sum
}

type metricsScraper struct{ url string }

func (sc *metricsScraper) scrape() (metricSamples, error) {
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(sc.url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		return nil, fmt.Errorf("GET %s: %s: %s", sc.url, resp.Status, body)
	}
	var out metricSamples
	lines := bufio.NewScanner(resp.Body)
	lines.Buffer(nil, 1<<20)
	for lines.Scan() {
		line := lines.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		s, err := parseMetricLine(line)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, lines.Err()
}

// get scrapes once and returns one figure.
func (sc *metricsScraper) get(t *testing.T, name string, kv ...string) float64 {
	t.Helper()
	s, err := sc.scrape()
	if err != nil {
		t.Fatal(err)
	}
	return s.value(name, kv...)
}

// waitFor scrapes until cond holds, and returns the scrape that satisfied it.
func (sc *metricsScraper) waitFor(t *testing.T, what string, cond func(metricSamples) bool) metricSamples {
	t.Helper()
	var last metricSamples
	var lastErr error
	deadline := time.Now().Add(30 * time.Second)
	for {
		last, lastErr = sc.scrape()
		if lastErr == nil && cond(last) {
			return last
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if lastErr != nil {
		t.Fatalf("waiting for %s: %v", what, lastErr)
	}
	var spoolfsLines []string
	for _, m := range last {
		if strings.HasPrefix(m.name, "spoolfs_") && !strings.Contains(m.name, "_bucket") {
			spoolfsLines = append(spoolfsLines, fmt.Sprintf("%s%v %v", m.name, m.labels, m.value))
		}
	}
	t.Fatalf("timed out waiting for %s; last scrape:\n%s", what, strings.Join(spoolfsLines, "\n"))
	return nil
}

// parseMetricLine reads `name{k="v",...} value [timestamp]`.
func parseMetricLine(line string) (metricSample, error) {
	s := metricSample{labels: map[string]string{}}
	i := strings.IndexAny(line, "{ ")
	if i < 0 {
		return s, fmt.Errorf("bad metric line %q", line)
	}
	s.name, line = line[:i], line[i:]
	if line[0] == '{' {
		line = line[1:]
		for {
			line = strings.TrimLeft(line, ", ")
			if strings.HasPrefix(line, "}") {
				line = line[1:]
				break
			}
			eq := strings.Index(line, `="`)
			if eq < 0 {
				return s, fmt.Errorf("bad labels in %q", line)
			}
			key := line[:eq]
			line = line[eq+2:]
			var val strings.Builder
			for {
				if line == "" {
					return s, fmt.Errorf("unterminated label value for %s", key)
				}
				c := line[0]
				line = line[1:]
				if c == '"' {
					break
				}
				if c == '\\' && line != "" {
					c = line[0]
					line = line[1:]
					if c == 'n' {
						c = '\n'
					}
				}
				val.WriteByte(c)
			}
			s.labels[key] = val.String()
		}
	}
	fields := strings.Fields(line)
	if len(fields) == 0 {
		return s, fmt.Errorf("no value for %s", s.name)
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return s, fmt.Errorf("value of %s: %v", s.name, err)
	}
	s.value = v
	return s, nil
}

// TestGOMAXPROCSFollowsCallers: the daemon runs its Go code on one CPU
// while one process calls it, on more while two processes write at once,
// and on one again when they stop (read through the Go collector's
// go_sched_gomaxprocs_threads).
func TestGOMAXPROCSFollowsCallers(t *testing.T) {
	if runtime.NumCPU() < 2 {
		t.Skip("one CPU: the daemon has nothing to tune")
	}
	if _, set := os.LookupEnv("GOMAXPROCS"); set {
		t.Skip("GOMAXPROCS is set, and the daemon inherits it: its tuner is off")
	}
	addr := freeLoopbackAddr(t)
	m := mountBinary(t, "--metrics", addr, "--ram", "512MiB", "--spill-threshold", "256MiB")
	sc := &metricsScraper{url: "http://" + addr + "/metrics"}
	const procs = "go_sched_gomaxprocs_threads"

	// One process.
	writeFile(t, filepath.Join(m.Dir, "one"), make([]byte, 1<<20))
	if got := sc.get(t, procs); got != 1 {
		t.Errorf("with one caller GOMAXPROCS is %v, want 1", got)
	}

	// Two processes writing 4 KiB blocks at once, until the daemon has
	// seen them (each would write 1 GiB: they are stopped long before).
	var writers []*exec.Cmd
	for i := range 2 {
		w := exec.Command("dd", "if=/dev/zero", "of="+filepath.Join(m.Dir, fmt.Sprint("w", i)), "bs=4k", "count=262144", "status=none")
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		writers = append(writers, w)
	}
	stop := func() {
		for _, w := range writers {
			w.Process.Kill()
			w.Wait()
		}
		writers = nil
	}
	t.Cleanup(stop)
	sc.waitFor(t, "GOMAXPROCS above 1 with two writers", func(s metricSamples) bool { return s.value(procs) > 1 })
	stop()
	sc.waitFor(t, "GOMAXPROCS back to 1 once they stopped", func(s metricSamples) bool { return s.value(procs) == 1 })
}

// readRandom opens p as a random reader (openRandom) and reads n bytes at
// off. It returns the file, open.
func readRandom(t *testing.T, p string, off int64, n int) *os.File {
	t.Helper()
	f, err := openRandom(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if _, err := f.ReadAt(make([]byte, n), off); err != nil {
		t.Fatal(err)
	}
	return f
}
