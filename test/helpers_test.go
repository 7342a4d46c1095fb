package test

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/spoolfs/spoolfs/quota"
)

// stream is a deterministic pseudo-random byte stream (AES-CTR keyed by a
// seed): fast enough to feed gigabytes through a mount, and reproducible,
// so that a file can be checked without keeping a copy of it.
type stream struct{ s cipher.Stream }

func newStream(seed uint64) *stream {
	key := make([]byte, 16)
	binary.LittleEndian.PutUint64(key, seed)
	binary.LittleEndian.PutUint64(key[8:], ^seed)
	block, err := aes.NewCipher(key)
	if err != nil {
		panic(err)
	}
	return &stream{cipher.NewCTR(block, make([]byte, aes.BlockSize))}
}

// fill overwrites p with the next len(p) bytes of the stream.
func (s *stream) fill(p []byte) {
	clear(p)
	s.s.XORKeyStream(p, p)
}

// randBytes returns n bytes of the stream for seed.
func randBytes(seed uint64, n int64) []byte {
	p := make([]byte, n)
	newStream(seed).fill(p)
	return p
}

func sum(p []byte) [sha256.Size]byte { return sha256.Sum256(p) }

// wantErrno fails unless err is (or wraps) want.
func wantErrno(t testing.TB, err error, want syscall.Errno, what string) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: got error %v, want %v (%s)", what, err, want, errnoName(want))
	}
}

func errnoName(e syscall.Errno) string { return unix.ErrnoName(e) }

// lstat returns the raw stat of p (not following a final symlink).
func lstat(t testing.TB, p string) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatalf("lstat %s: %v", p, err)
	}
	return st
}

func fstat(t testing.TB, f *os.File) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatalf("fstat %s: %v", f.Name(), err)
	}
	return st
}

func tsTime(ts unix.Timespec) time.Time { return time.Unix(ts.Sec, ts.Nsec) }

// dropCache drops the kernel's cached pages of the open file, so that the
// next read is served by spoolfs, not by the page cache filled on write.
func dropCache(t testing.TB, f *os.File) {
	t.Helper()
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		t.Fatalf("fadvise DONTNEED %s: %v", f.Name(), err)
	}
}

// readBack reads p as spoolfs holds it: its page cache is dropped first.
func readBack(t testing.TB, p string) []byte {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatalf("open %s: %v", p, err)
	}
	defer f.Close()
	dropCache(t, f)
	data, err := io.ReadAll(f)
	if err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	return data
}

// checkContent fails unless p holds exactly want (as served by spoolfs).
func checkContent(t testing.TB, p string, want []byte) {
	t.Helper()
	got := readBack(t, p)
	if len(got) != len(want) {
		t.Errorf("%s: read %d bytes, want %d", p, len(got), len(want))
		return
	}
	if sum(got) != sum(want) {
		t.Errorf("%s: content differs at byte %d", p, firstDiff(got, want))
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func allZero(p []byte) bool {
	return len(bytes.TrimLeft(p, "\x00")) == 0
}

// eventually polls cond until it holds or the deadline passes. FUSE sends
// RELEASE asynchronously: close(2) returns before the daemon has seen it,
// so what a last close frees can only be awaited, not observed at once.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Errorf("timed out waiting for: %s", what)
			return
		}
		<-tick.C
	}
}

// waitUsage waits until the mount's quota usage is want.
func waitUsage(t testing.TB, m *testMount, want quota.Usage) {
	t.Helper()
	var got quota.Usage
	eventually(t, fmt.Sprintf("quota usage %+v", want), func() bool {
		got = m.Quota.Usage()
		return got == want
	})
	if got != want {
		t.Errorf("quota usage is %+v, want %+v", got, want)
	}
}

// baseline is the usage of an empty mount: the root directory's inode.
var baseline = quota.Usage{Bytes: 0, Inodes: 1}

// spillNames lists every entry below the spill directory other than the
// pool's private directory itself: spilled files must never have a name.
func spillNames(t testing.TB, m *testMount) []string {
	t.Helper()
	private := m.FS.Pool().Dir()
	var names []string
	err := filepath.WalkDir(m.SpillDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != m.SpillDir && p != private {
			names = append(names, p)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walking spill dir: %v", err)
	}
	return names
}

func checkSpillDirUnnamed(t testing.TB, m *testMount) {
	t.Helper()
	if names := spillNames(t, m); len(names) > 0 {
		t.Errorf("spill dir holds named entries: %q", names)
	}
}

// withOpts returns a copy of o changed by fn.
func withOpts(o mountOpts, fn func(*mountOpts)) mountOpts {
	fn(&o)
	return o
}

// tiersWith is tiers with the options of each tier adjusted by adjust.
func tiersWith(t *testing.T, adjust func(*mountOpts), fn func(t *testing.T, o mountOpts)) {
	tiers(t, func(t *testing.T, o mountOpts) { fn(t, withOpts(o, adjust)) })
}

// openMountToOthers lets other users reach the mount point: t.TempDir
// makes the directories above it 0700.
func openMountToOthers(t testing.TB, m *testMount) {
	t.Helper()
	for d := filepath.Dir(m.Dir); d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatalf("chmod %s: %v", d, err)
		}
	}
}

// runAs runs a shell script as uid:gid in dir and returns its combined
// output and error.
func runAs(uid, gid uint32, dir, script string) (string, error) {
	cmd := exec.Command("/bin/sh", "-c", "cd \"$1\" && "+script, "sh", dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid}}
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C"}
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// mustExist and mustNotExist check a name in the mount.
func mustNotExist(t testing.TB, p string) {
	t.Helper()
	if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s: lstat gives %v, want ENOENT", p, err)
	}
}

func mustExist(t testing.TB, p string) {
	t.Helper()
	if _, err := os.Lstat(p); err != nil {
		t.Errorf("%s: %v", p, err)
	}
}

// listNames returns the names in dir, sorted.
func listNames(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("readdir %s: %v", dir, err)
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	return names
}

// checkUsageMatchesTree fails unless the quota usage is what the tree
// holds: the st_blocks of every inode once (file data, and the extended
// attributes and symlink targets of every kind of node), and one inode for
// each, the root included. Files unlinked but still open are not in the tree, so
// call it when none are (it waits for pending releases).
func checkUsageMatchesTree(t testing.TB, m *testMount) {
	t.Helper()
	var want quota.Usage
	seen := make(map[uint64]bool)
	err := filepath.WalkDir(m.Dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		st := lstat(t, p)
		if seen[st.Ino] {
			return nil
		}
		seen[st.Ino] = true
		want.Inodes++
		want.Bytes += st.Blocks * 512
		return nil
	})
	if err != nil {
		t.Fatalf("walking the mount: %v", err)
	}
	waitUsage(t, m, want)
}
