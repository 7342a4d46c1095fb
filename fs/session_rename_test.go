//go:build linux

package fs

// Renames and a session's border: no entry crosses it.

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/spoolfs/spoolfs/fs/control"
)

// TestSessionRename: no entry crosses a session's border; a session may be
// renamed within the root and keeps its policy.
func TestSessionRename(t *testing.T) {
	m := mountSessions(t, sessOpts{})
	a, b := m.mkSession("a"), m.mkSession("b")
	sessWriteN(t, filepath.Join(a, "f"), 4096)
	if err := os.Mkdir(filepath.Join(a, "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	sessWriteN(t, m.path("rootfile"), 4096) // a file at the root level

	exdev := [][2]string{
		{filepath.Join(a, "f"), filepath.Join(b, "f")},
		{filepath.Join(a, "dir"), filepath.Join(b, "dir")},
		{m.path("rootfile"), filepath.Join(a, "rootfile")},
		{filepath.Join(a, "f"), m.path("f")},
		{a, filepath.Join(b, "a")}, // a session into another
	}
	for _, mv := range exdev {
		if err := unix.Rename(mv[0], mv[1]); !errors.Is(err, unix.EXDEV) {
			t.Errorf("rename %s -> %s: %v, want EXDEV", mv[0], mv[1], err)
		}
	}
	if err := unix.Link(filepath.Join(a, "f"), filepath.Join(b, "hard")); !errors.Is(err, unix.EXDEV) {
		t.Errorf("link across sessions: %v, want EXDEV", err)
	}
	if err := unix.Renameat2(unix.AT_FDCWD, filepath.Join(a, "f"), unix.AT_FDCWD, m.path("rootfile"), unix.RENAME_EXCHANGE); !errors.Is(err, unix.EXDEV) {
		t.Errorf("exchange across the border: %v, want EXDEV", err)
	}
	if err := os.Remove(m.path("rootfile")); err != nil {
		t.Fatal(err)
	}

	// Renaming a session keeps its policy, its account and its deadline.
	m.setx(a, control.AttrTTL, "30m")
	m.setx(a, control.AttrSize, strconv.Itoa(64<<10))
	sess := m.mustSession("a")
	a2 := m.path("a2")
	if err := os.Rename(a, a2); err != nil {
		t.Fatalf("renaming a session: %v", err)
	}
	if m.mustSession("a2") != sess {
		t.Fatal("the renamed directory is a different session")
	}
	if got := m.sessGetx(a2, control.AttrTTL); got != "30m0s" {
		t.Errorf("ttl after rename: %q", got)
	}
	if got := m.sessGetx(a2, control.AttrSize); got != "65536" {
		t.Errorf("size after rename: %q", got)
	}
	if _, err := os.Stat(filepath.Join(a2, "f")); err != nil {
		t.Errorf("content after rename: %v", err)
	}
	if err := os.WriteFile(filepath.Join(a2, "big"), make([]byte, 128<<10), 0o644); !errors.Is(err, syscall.EDQUOT) {
		t.Errorf("quota after rename: %v, want EDQUOT", err)
	}
	os.Remove(filepath.Join(a2, "big"))
	m.waitOpens(sess, 0)

	// Renaming a session over an empty one ends the one replaced.
	if err := unix.Rename(a2, b); err != nil { // os.Rename refuses to replace a directory
		t.Fatalf("renaming a session over an empty one: %v", err)
	}
	if n := m.f.sessions.count(); n != 1 {
		t.Errorf("%d sessions after replacing one, want 1", n)
	}
	if m.mustSession("b") != sess {
		t.Fatal("b is not the renamed session")
	}
	m.advance(30*time.Minute + time.Second)
	m.wantGone("b")
	m.wantEndLog("b", control.ReasonTTL, 4096)
	m.waitBaseline()
}
