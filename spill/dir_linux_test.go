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
	fd := f.disk.f.Fd()
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
