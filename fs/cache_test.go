//go:build linux

package fs

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/spoolfs/spoolfs/fs/fusetest"
)

// keeperBytes is what the cacheKeeper counts as cached by closed files.
func keeperBytes(k *cacheKeeper) int64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.bytes
}

// waitKeeper waits for the keeper to count want bytes: RELEASE reaches us
// after close(2) has returned.
func waitKeeper(t *testing.T, k *cacheKeeper, want int64, after string) {
	t.Helper()
	fusetest.WaitFor(t, 10*time.Second, fmt.Sprintf("the keeper to count %d bytes after %s (it counts %d)", want, after, keeperBytes(k)),
		func() bool { return keeperBytes(k) == want })
}

// writeCached writes data to p through a read-write (page-cached) open.
func writeCached(t *testing.T, p string, data []byte) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestCacheKeeperCounts: closed RAM-tier files are counted at their size
// only if some open of theirs went through the page cache; a file written
// only through write-only (direct) opens has no cache to bound and must
// not push others' out. The count never passes the budget.
func TestCacheKeeperCounts(t *testing.T) {
	const budget = 1 << 20
	const size = 256 << 10
	m := mountSessions(t, sessOpts{cache: budget})
	k := m.f.cache
	data := make([]byte, size)

	direct := filepath.Join(m.dir, "direct")
	if err := os.WriteFile(direct, data, 0o644); err != nil { // O_WRONLY
		t.Fatal(err)
	}
	n := m.f.root.GetChild("direct").Operations().(*fileNode)
	fusetest.WaitFor(t, 10*time.Second, "the write-only file to be closed", func() bool {
		n.mu.Lock()
		defer n.mu.Unlock()
		return n.opens == 0
	})
	n.mu.Lock()
	cached := n.cached
	n.mu.Unlock()
	if cached {
		t.Fatal("a file only opened write-only is marked as having page cache")
	}
	writeCached(t, filepath.Join(m.dir, "cached"), data)
	waitKeeper(t, k, size, "closing a write-only and a read-write file")

	if _, err := os.ReadFile(direct); err != nil { // a cached open of it
		t.Fatal(err)
	}
	waitKeeper(t, k, 2*size, "reading the write-only file")

	for i := range 8 {
		writeCached(t, filepath.Join(m.dir, fmt.Sprint("c", i)), data)
		if b := keeperBytes(k); b > budget {
			t.Fatalf("the keeper counts %d bytes, past its budget of %d", b, budget)
		}
	}
	waitKeeper(t, k, budget, "closing more cached files than fit")
}
