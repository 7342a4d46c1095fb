//go:build linux

package fs

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/spoolfs/spoolfs/fs/fusetest"
)

func readWhole(t *testing.T, p string, size int) (*os.File, []byte) {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	got := make([]byte, size)
	if n, err := f.ReadAt(got, 0); n != size {
		t.Fatalf("read %d of %d bytes: %v", n, size, err)
	}
	return f, got
}

// Where the kernel refuses passthrough (here: not asked for at INIT; on
// kernels before 6.9 or with an unprivileged daemon, the same refusal),
// spilled files are read through the daemon as before, and the log says so
// once.
func TestPassthroughFallsBackWhenRefused(t *testing.T) {
	m := mountSessions(t, sessOpts{spillAll: true, disabledCaps: fuse.CAP_PASSTHROUGH})
	data := pattern(9, 1<<20)
	for _, name := range []string{"a", "b"} {
		p := filepath.Join(m.dir, name)
		writeDirect(t, p, data)
		f, got := readWhole(t, p, len(data))
		if !bytes.Equal(got, data) {
			t.Fatalf("%s reads back wrong", name)
		}
		if cachedPagesIn(t, f, 0, int64(len(data))) == 0 {
			t.Errorf("%s: the FUSE file caches nothing, as if its reads had passed through", name)
		}
	}
	if n := strings.Count(m.logs.String(), "refused FUSE passthrough"); n != 1 {
		t.Errorf("the refusal is logged %d times, want once:\n%s", n, m.logs.String())
	}
}

// The last close of a passthrough episode ends it, whatever mix of opens
// joined it; the next read-only open starts another.
func TestPassthroughEpisodeEnds(t *testing.T) {
	m := mountSessions(t, sessOpts{spillAll: true})
	p := filepath.Join(m.dir, "f")
	data := pattern(8, 2<<20) // large enough for a spill file of its own
	writeDirect(t, p, data)
	n := m.f.root.GetChild("f").Operations().(*fileNode)
	waitNoWriters(t, n)
	// The episode, and its opens then.
	episode := func() (*episode, int) {
		n.mu.Lock()
		defer n.mu.Unlock()
		if n.pt == nil {
			return nil, 0
		}
		return n.pt, n.pt.opens
	}
	r, _ := readWhole(t, p, len(data))
	first, opens := episode()
	if first == nil || opens != 1 {
		t.Fatalf("a read-only open of a spilled file: episode %p with %d opens, want 1", first, opens)
	}
	w, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if e, opens := episode(); e != first || opens != 2 {
		t.Errorf("a writable open did not join the episode: %p with %d opens", e, opens)
	}
	r.Close()
	w.Close()
	// RELEASE comes after close(2) returns.
	fusetest.WaitFor(t, 20*time.Second, "the episode to end", func() bool {
		e, _ := episode()
		return e == nil
	})
	readWhole(t, p, len(data))
	if e, _ := episode(); e == nil || e == first {
		t.Errorf("the next read-only open started no new episode: %p", e)
	}
}
