package fusetest

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"

	"github.com/spoolfs/spoolfs/fs/mounts"
)

// TestMountIsGoneAfterCleanup: a mount made for a subtest is there while
// it runs and gone once it has ended, its Close called after the unmount.
func TestMountIsGoneAfterCleanup(t *testing.T) {
	var dir string
	var conn uint32
	closedMounted := true
	t.Run("mount", func(t *testing.T) {
		m := Mount(t, Options{}, func() FS {
			return FS{Root: &gofs.Inode{}, Close: func() error {
				closedMounted = mounts.IsMounted(dir)
				return nil
			}}
		})
		dir, conn = m.Dir, m.Conn
		if !mounts.IsMounted(dir) {
			t.Fatalf("%s is not mounted", dir)
		}
		if !mounts.ConnectionMounted(conn) {
			t.Errorf("connection %d of %s is not in the mount table", conn, dir)
		}
		if _, err := os.ReadDir(dir); err != nil {
			t.Fatalf("readdir of the mount: %v", err)
		}
	})
	if dir == "" {
		t.Fatal("the subtest did not mount")
	}
	if mounts.IsMounted(dir) {
		t.Errorf("%s is still mounted after the subtest", dir)
	}
	if mounts.ConnectionMounted(conn) {
		t.Errorf("connection %d is still in the mount table after the subtest", conn)
	}
	if closedMounted {
		t.Error("Close ran while the filesystem was still mounted")
	}
}

// errorRecorder is a testing.TB that keeps the errors it is told of.
type errorRecorder struct {
	testing.TB
	errors []string
}

func (r *errorRecorder) Helper() {}

func (r *errorRecorder) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

func TestCheckNothingLeftFindsASpillFile(t *testing.T) {
	spillDir := t.TempDir()
	r := &errorRecorder{TB: t}
	CheckNothingLeft(r, t.TempDir(), spillDir)
	if len(r.errors) != 0 {
		t.Fatalf("an empty spill dir: %q", r.errors)
	}
	if err := os.WriteFile(filepath.Join(spillDir, "left"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	CheckNothingLeft(r, t.TempDir(), spillDir)
	if len(r.errors) != 1 {
		t.Errorf("a spill dir holding a file: errors %q, want one", r.errors)
	}
}

func TestCheckNoFDLeakFindsASpillFile(t *testing.T) {
	before := OpenFDs(t)
	if before == nil {
		t.Skip("no /proc/self/fd to list descriptors by")
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "spoolfs-leak"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := &errorRecorder{TB: t}
	CheckNoFDLeak(r, before)
	if len(r.errors) != 1 {
		t.Errorf("a spill file left open: errors %q, want one", r.errors)
	}
}

func TestClockMovesOnlyWhenAdvanced(t *testing.T) {
	c := NewClock()
	t0 := c.Now()
	if got := c.Now(); !got.Equal(t0) {
		t.Errorf("the clock moved by itself: %v, then %v", t0, got)
	}
	if got := c.Advance(time.Hour); !got.Equal(t0.Add(time.Hour)) || !c.Now().Equal(got) {
		t.Errorf("after Advance(1h): %v, Now %v, want %v", got, c.Now(), t0.Add(time.Hour))
	}
}
