package test

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/spoolfs/spoolfs/fs/requests"
)

// asyncOps are requests the kernel sends on its own time, after the system
// call that caused them has returned (or, for FORGET, whenever it drops an
// inode): they cost the caller no wait, and a count taken right after the
// call may or may not include them.
var asyncOps = map[string]bool{"RELEASE": true, "RELEASEDIR": true, "FORGET": true}

// requestCounter counts, through --metrics, the FUSE requests that a piece
// of work costs. The daemon records a request before it answers it, so the
// synchronous ones are all counted by the time the system call returns.
type requestCounter struct {
	sc *metricsScraper
}

// requests maps each synchronous op to its count in a scrape.
func (rc requestCounter) requests(t *testing.T) map[string]float64 {
	t.Helper()
	s, err := rc.sc.scrape()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, op := range requests.Ops() {
		name := op.String()
		if asyncOps[name] {
			continue
		}
		if n := s.value("spoolfs_fuse_request_duration_seconds_count", "op", name); n != 0 {
			out[name] = n
		}
	}
	return out
}

// count runs fn and returns the synchronous requests it caused, per op.
func (rc requestCounter) count(t *testing.T, fn func()) requestCount {
	t.Helper()
	before := rc.requests(t)
	fn()
	after := rc.requests(t)
	delta := requestCount{}
	for op, n := range after {
		if d := n - before[op]; d != 0 {
			delta[op] = d
		}
	}
	return delta
}

type requestCount map[string]float64

func (c requestCount) total() float64 {
	var sum float64
	for _, n := range c {
		sum += n
	}
	return sum
}

func (c requestCount) String() string {
	ops := make([]string, 0, len(c))
	for op := range c {
		ops = append(ops, op)
	}
	sort.Strings(ops)
	var b strings.Builder
	for i, op := range ops {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%s=%g", op, c[op])
	}
	if b.Len() == 0 {
		return "none"
	}
	return b.String()
}

// TestRequestsPerOperation counts the round trips to the daemon that
// ordinary operations cost, as the README's performance section states
// them: a 4 KiB or 1 MiB write is one WRITE; a create + write + close is
// LOOKUP, CREATE, WRITE and a GETATTR of the parent, plus one GETXATTR of
// security.capability from a read-write open; a stat or a re-read of what
// the kernel has cached is none. Every round trip costs tens of
// microseconds on a small VM, so a change that adds one to these paths (a
// capability lost at INIT, a cache timeout shortened, a cache dropped on
// open) fails here, not only in a benchmark.
func TestRequestsPerOperation(t *testing.T) {
	addr := freeLoopbackAddr(t)
	m := mountBinary(t, "--metrics", addr, "--spill-threshold", "64MiB")
	rc := requestCounter{sc: &metricsScraper{url: "http://" + addr + "/metrics"}}
	const n = 64
	page := randBytes(1, 4096)

	create := func(dir string, flags int) {
		t.Helper()
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		// The first close answers FLUSH with ENOSYS, after which the
		// kernel sends no more: keep that one-off out of the count.
		writeWith(t, filepath.Join(dir, "warm-up"), flags, page)
		got := rc.count(t, func() {
			for i := range n {
				writeWith(t, filepath.Join(dir, fmt.Sprintf("f%03d", i)), flags, page)
			}
		})
		want := requestCount{"LOOKUP": n, "CREATE": n, "WRITE": n, "GETATTR": n}
		if flags&unix.O_ACCMODE == unix.O_RDWR {
			want["GETXATTR"] = n
		}
		t.Logf("%d creates (%s): %v", n, accessMode(flags), got)
		for op, w := range want {
			if got[op] > w {
				t.Errorf("%d creates (%s): %s = %g, want at most %g", n, accessMode(flags), op, got[op], w)
			}
		}
		if got["CREATE"] != n || got["WRITE"] != n {
			t.Errorf("%d creates (%s): CREATE = %g, WRITE = %g, want %d of each", n, accessMode(flags), got["CREATE"], got["WRITE"], n)
		}
		if extra := got.total() - want.total(); extra > 0 {
			t.Errorf("%d creates (%s) cost %g requests, %g more than %v", n, accessMode(flags), got.total(), extra, want)
		}
	}
	t.Run("create-write-close/write-only", func(t *testing.T) {
		create(filepath.Join(m.Dir, "wo"), os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	})
	t.Run("create-write-close/read-write", func(t *testing.T) {
		create(filepath.Join(m.Dir, "rw"), os.O_RDWR|os.O_CREATE|os.O_EXCL)
	})

	// Writes to an open file: one WRITE each, nothing else, for 4 KiB and
	// for 1 MiB (the largest request the kernel sends here), from both
	// kinds of open (direct and through the page cache).
	for _, flags := range []int{os.O_WRONLY, os.O_RDWR} {
		for _, size := range []int{4 << 10, 1 << 20} {
			t.Run(fmt.Sprintf("write-%dKiB/%s", size>>10, accessMode(flags)), func(t *testing.T) {
				f, err := os.OpenFile(filepath.Join(m.Dir, fmt.Sprintf("w-%d-%d", flags, size)), flags|os.O_CREATE, 0o644)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				buf := randBytes(2, int64(size))
				if _, err := f.Write(buf); err != nil { // the first write of a new file may probe more
					t.Fatal(err)
				}
				got := rc.count(t, func() {
					for range n {
						if _, err := f.Write(buf); err != nil {
							t.Fatal(err)
						}
					}
				})
				if want := (requestCount{"WRITE": n}); !maps.Equal(got, want) {
					t.Errorf("%d writes of %d bytes: %v, want %v", n, size, got, want)
				}
			})
		}
	}

	// stat of names the kernel has looked up: nothing, for an hour.
	t.Run("stat", func(t *testing.T) {
		dir := filepath.Join(m.Dir, "wo")
		for i := range n {
			lstat(t, filepath.Join(dir, fmt.Sprintf("f%03d", i)))
		}
		got := rc.count(t, func() {
			for range 4 {
				for i := range n {
					lstat(t, filepath.Join(dir, fmt.Sprintf("f%03d", i)))
				}
			}
		})
		if got.total() != 0 {
			t.Errorf("%d stats of cached names cost %v, want none", 4*n, got)
		}
	})

	// A re-read of a file the page cache holds: one OPEN, no READ. (The
	// read that filled the cache also made the kernel forget the file's
	// atime, so the next fstat asks for it once: read twice first.)
	t.Run("warm-read", func(t *testing.T) {
		p := filepath.Join(m.Dir, "warm")
		data := randBytes(3, 8<<20)
		writeFile(t, p, data)
		checkContent(t, p, data) // from the daemon; this read fills the page cache
		readFile(t, p)
		got := rc.count(t, func() {
			if sum(readFile(t, p)) != sum(data) {
				t.Error("the re-read differs from what was written")
			}
		})
		if want := (requestCount{"OPEN": 1}); !maps.Equal(got, want) {
			t.Errorf("re-reading 8 MiB the page cache holds: %v, want %v", got, want)
		}
	})
}

// writeWith opens p with flags, writes data and closes it, as a program
// writing a small file does.
func writeWith(t *testing.T, p string, flags int, data []byte) {
	t.Helper()
	f, err := os.OpenFile(p, flags, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func accessMode(flags int) string {
	switch flags & syscall.O_ACCMODE {
	case syscall.O_WRONLY:
		return "write-only"
	case syscall.O_RDWR:
		return "read-write"
	}
	return "read-only"
}
