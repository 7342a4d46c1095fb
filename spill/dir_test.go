package spill

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckDir: a spill directory in which others could rename or replace
// the pool's private directory is refused, by CheckDir and by NewPool; one
// like /tmp (sticky) or private to us is accepted, also through a symlink.
func TestCheckDir(t *testing.T) {
	mk := func(mode os.FileMode) string {
		d := filepath.Join(t.TempDir(), "spill")
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, mode); err != nil { // past the umask
			t.Fatal(err)
		}
		return d
	}
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(mk(0o700), link); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	refused := map[string]struct{ dir, says string }{
		"writable by all":   {mk(0o777), "not sticky"},
		"writable by group": {mk(0o770), "not sticky"},
		"not a directory":   {file, "not a directory"},
		"missing":           {filepath.Join(t.TempDir(), "missing"), "no such file"},
	}
	if os.Geteuid() == 0 {
		theirs := mk(0o755)
		if err := os.Chown(theirs, 1000, 1000); err != nil {
			t.Fatal(err)
		}
		refused["another user's"] = struct{ dir, says string }{theirs, "owned by uid 1000"}
	}
	for name, c := range refused {
		err := CheckDir(c.dir)
		if err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: CheckDir = %v, want an error saying %q", name, err, c.says)
		}
		if p, err := NewPool(Config{Dir: c.dir}); err == nil {
			p.Close()
			t.Errorf("%s: NewPool accepted %s", name, c.dir)
		}
		if entries, _ := os.ReadDir(c.dir); len(entries) != 0 {
			t.Errorf("%s: refused, yet %s holds %s", name, c.dir, entries[0].Name())
		}
	}
	for name, dir := range map[string]string{
		"sticky, writable by all": mk(0o777 | os.ModeSticky),
		"ours":                    mk(0o700),
		"ours, through a symlink": link,
	} {
		if err := CheckDir(dir); err != nil {
			t.Errorf("%s: CheckDir: %v", name, err)
		}
		p, err := NewPool(Config{Dir: dir})
		if err != nil {
			t.Errorf("%s: NewPool: %v", name, err)
			continue
		}
		if err := p.Close(); err != nil {
			t.Errorf("%s: Close: %v", name, err)
		}
	}
}
