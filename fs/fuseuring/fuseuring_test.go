package fuseuring_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/spoolfs/spoolfs/fs/fusetest"
)

// memRoot is a directory where files can be made, in memory.
type memRoot struct{ gofs.Inode }

var _ gofs.NodeCreater = (*memRoot)(nil)

func (r *memRoot) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	file := &gofs.MemRegularFile{Attr: fuse.Attr{Mode: mode}}
	ch := r.NewInode(ctx, file, gofs.StableAttr{Mode: syscall.S_IFREG})
	return ch, nil, 0, 0
}

func mountMem(t *testing.T) *fusetest.Mounted {
	return fusetest.Mount(t, fusetest.Options{Transport: "uring"}, func() fusetest.FS {
		return fusetest.FS{Root: &memRoot{}}
	})
}

// Requests of every shape (names, attributes, data larger than one
// request, directory listings) go over the rings and come back right.
func TestRequestsAnsweredOverTheRing(t *testing.T) {
	m := mountMem(t)
	ring := m.Ring()
	if ring.Queues() == 0 || ring.Workers() < ring.Queues() {
		t.Fatalf("%d queues, %d workers: want a worker on every queue", ring.Queues(), ring.Workers())
	}
	before := ring.Answered()
	data := bytes.Repeat([]byte("0123456789abcdef"), 3<<20/16+7) // three requests and a bit
	p := filepath.Join(m.Dir, "f")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes, not the %d written", len(got), len(data))
	}
	names, err := os.ReadDir(m.Dir)
	if err != nil || len(names) != 1 || names[0].Name() != "f" {
		t.Fatalf("ReadDir: %v, %v; want [f]", names, err)
	}
	if _, err := os.Stat(filepath.Join(m.Dir, "missing")); !os.IsNotExist(err) {
		t.Fatalf("stat of a missing name: %v, want ENOENT", err)
	}
	if ring.Answered() == before {
		t.Fatal("no request was answered over the rings")
	}
	if ring.BufferBytes() == 0 {
		t.Fatal("BufferBytes is 0 with workers running")
	}
}

// After the unmount every worker has ended and its buffers are unmapped;
// the harness checks that no descriptor is left.
func TestWorkersEndWithTheConnection(t *testing.T) {
	var ring interface {
		Workers() int
		BufferBytes() int64
	}
	t.Run("mount", func(t *testing.T) {
		m := mountMem(t)
		ring = m.Ring()
		if err := os.WriteFile(filepath.Join(m.Dir, "f"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	})
	if ring == nil {
		t.Skip("not mounted")
	}
	if n, b := ring.Workers(), ring.BufferBytes(); n != 0 || b != 0 {
		t.Fatalf("after the unmount: %d workers, %d bytes mapped; want none", n, b)
	}
}

// Many writers at once keep every worker of a queue busy, so that more
// are started (which give back the pages of large requests after each):
// every byte still comes back as written.
func TestConcurrentLargeWrites(t *testing.T) {
	m := mountMem(t)
	const writers = 12
	errs := make(chan error, writers)
	for i := range writers {
		go func() {
			data := bytes.Repeat([]byte{byte('a' + i)}, 2<<20+4096*i)
			p := filepath.Join(m.Dir, fmt.Sprintf("f%d", i))
			if err := os.WriteFile(p, data, 0o644); err != nil {
				errs <- err
				return
			}
			got, err := os.ReadFile(p)
			if err == nil && !bytes.Equal(got, data) {
				err = fmt.Errorf("%s: read back differs from what was written", p)
			}
			errs <- err
		}()
	}
	for range writers {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	t.Logf("%d workers on %d queues, %d bytes mapped", m.Ring().Workers(), m.Ring().Queues(), m.Ring().BufferBytes())
}
