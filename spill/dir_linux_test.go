package spill

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestPrivateDirSwapped is the attack on a spill directory that others can
// write: after the pool is made, its private directory is renamed and a
// symlink to a directory of the attacker's put in its place. Spills must
// still land in the pool's own directory (the one it made, wherever it now
// is), the data must read back, and Close must neither follow the link nor
// touch what it points to.
func TestPrivateDirSwapped(t *testing.T) {
	parent := t.TempDir()
	p, err := NewPool(Config{Dir: parent, Threshold: 0, RAMBudget: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	private := p.Dir()
	moved := filepath.Join(parent, "moved")
	attacker := t.TempDir()
	if err := os.Rename(private, moved); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(attacker, private); err != nil {
		t.Fatal(err)
	}

	f := p.NewFile(newAcct())
	data := pat(3*PageSize+5, 9)
	if _, err := f.WriteAt(data, 0); err != nil {
		t.Fatalf("write that spills: %v", err)
	}
	if !f.OnDisk() {
		t.Fatal("file not spilled")
	}
	switch where := spillFileDir(t, f); {
	case sameDir(t, where, attacker):
		t.Errorf("spill file made in the attacker's directory %s", where)
	case !sameDir(t, where, moved):
		t.Errorf("spill file made in %s, not in the pool's own directory (now %s)", where, moved)
	}
	checkContents(t, f, data)

	err = p.Close()
	if err == nil {
		t.Error("Close: no error, though the private directory was replaced by a symlink")
	}
	if st, err := os.Lstat(private); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the symlink put in place of the private directory: %v, %v", st, err)
	}
	if entries, err := os.ReadDir(attacker); err != nil || len(entries) != 0 {
		t.Errorf("attacker's directory after Close: %d names, %v", len(entries), err)
	}
	os.Remove(private)
	os.Remove(moved)
}

// spillFileDir is the directory in which f's spill file was made, from the
// name Linux gives the descriptor of an unnamed file: "DIR/#INODE (deleted)".
func spillFileDir(t *testing.T, f *File) string {
	t.Helper()
	f.mu.RLock()
	fd := diskOf(t, f).osFile().Fd()
	f.mu.RUnlock()
	target, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(fd)))
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(strings.TrimSuffix(target, " (deleted)"))
}

func sameDir(t *testing.T, a, b string) bool {
	t.Helper()
	sa, errA := os.Stat(a)
	sb, errB := os.Stat(b)
	return errA == nil && errB == nil && os.SameFile(sa, sb)
}

// TestPrivateDirRemoved: a tmp cleaner (systemd-tmpfiles ages /tmp by ten
// days) may remove the private directory of a long-running mount, which
// holds no names since its files are unnamed. Spills must go on: the pool
// makes a new private directory, relative to the spill directory it holds
// open, and Close removes that one. Small files go on into the shared
// spill files opened at the first spill; the files of each round are large
// enough for a dedicated spill file, which is made in the new directory.
func TestPrivateDirRemoved(t *testing.T) {
	parent := t.TempDir()
	p, err := NewPool(Config{Dir: parent, Threshold: 0, RAMBudget: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	p.dedicatedMin = 2 * PageSize
	before := p.NewFile(newAcct())
	old := pat(PageSize+1, 3)
	if _, err := before.WriteAt(old, 0); err != nil || !before.OnDisk() {
		t.Fatalf("first spill: %v, on disk %v", err, before.OnDisk())
	}
	for round := range 3 {
		if err := os.Remove(p.Dir()); err != nil {
			t.Fatalf("round %d: the cleaner's rmdir: %v", round, err)
		}
		f := p.NewFile(newAcct())
		data := pat(2*PageSize+7, byte(round))
		if _, err := f.WriteAt(data, 0); err != nil {
			t.Fatalf("round %d: a spill after the private directory was removed: %v", round, err)
		}
		if !f.OnDisk() {
			t.Fatalf("round %d: file not spilled", round)
		}
		if where := spillFileDir(t, f); !sameDir(t, where, p.Dir()) {
			t.Errorf("round %d: spill file in %s, not in the new private directory %s", round, where, p.Dir())
		}
		checkContents(t, f, data)
		f.Close()
		small := p.NewFile(newAcct())
		if _, err := small.WriteAt(old, 0); err != nil || !small.OnDisk() {
			t.Fatalf("round %d: a small file's spill: %v, on disk %v", round, err, small.OnDisk())
		}
		checkContents(t, small, old)
		small.Close()
	}
	checkContents(t, before, old)
	before.Close()
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if names, _ := os.ReadDir(parent); len(names) != 0 {
		t.Errorf("left in the spill directory after Close: %v", names)
	}

	// Removed with no spill after it: nothing is left to remove, and the
	// end of the mount is no failure.
	p, err = NewPool(Config{Dir: parent, Threshold: 0, RAMBudget: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(p.Dir()); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("Close after the private directory was removed: %v", err)
	}
}
