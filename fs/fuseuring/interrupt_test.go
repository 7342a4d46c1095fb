package fuseuring_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/spoolfs/spoolfs/fs/fusetest"
)

// stuckRoot has one file, "stuck", whose reads wait until the request is
// interrupted, and says on interrupted when one was.
type stuckRoot struct {
	gofs.Inode
	reading     chan struct{}
	interrupted chan struct{}
}

type stuckFile struct {
	gofs.Inode
	root *stuckRoot
}

var (
	_ gofs.NodeOnAdder = (*stuckRoot)(nil)
	_ gofs.NodeOpener  = (*stuckFile)(nil)
	_ gofs.NodeReader  = (*stuckFile)(nil)
)

func (r *stuckRoot) OnAdd(ctx context.Context) {
	ch := r.NewPersistentInode(ctx, &stuckFile{root: r}, gofs.StableAttr{Mode: syscall.S_IFREG})
	r.AddChild("stuck", ch, false)
}

func (f *stuckFile) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	return nil, fuse.FOPEN_DIRECT_IO, 0
}

func (f *stuckFile) Read(ctx context.Context, fh gofs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	f.root.reading <- struct{}{}
	<-ctx.Done()
	close(f.root.interrupted)
	return nil, syscall.EINTR
}

// A request that came over a ring is interrupted by the INTERRUPT that
// the kernel sends over /dev/fuse when its caller gets a signal: the
// handler sees its context cancelled and the caller's read ends.
func TestInterruptReachesARingRequest(t *testing.T) {
	root := &stuckRoot{reading: make(chan struct{}, 1), interrupted: make(chan struct{})}
	m := fusetest.Mount(t, fusetest.Options{Transport: "uring"}, func() fusetest.FS {
		return fusetest.FS{Root: root}
	})
	answered := m.Ring().Answered()
	cat := exec.Command("cat", filepath.Join(m.Dir, "stuck"))
	if err := cat.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cat.Wait() }()
	select {
	case <-root.reading:
	case <-time.After(time.Minute):
		cat.Process.Kill()
		t.Fatal("the read never reached the filesystem")
	}
	if m.Ring().Answered() == answered {
		t.Fatal("LOOKUP and OPEN of the file were not answered over the ring")
	}
	cat.Process.Signal(syscall.SIGTERM)
	select {
	case <-root.interrupted:
	case <-time.After(time.Minute):
		m.Abort() // lets cat and the handler go
		t.Fatal("the handler was never interrupted")
	}
	select {
	case <-exited:
	case <-time.After(time.Minute):
		m.Abort()
		t.Fatal("cat did not end after its read was interrupted")
	}
}

// slowRoot has one file, "slow", whose reads wait for release, whatever
// happens to the request meanwhile.
type slowRoot struct {
	gofs.Inode
	reading chan struct{}
	release chan struct{}
}

type slowFile struct {
	gofs.Inode
	root *slowRoot
}

func (r *slowRoot) OnAdd(ctx context.Context) {
	ch := r.NewPersistentInode(ctx, &slowFile{root: r}, gofs.StableAttr{Mode: syscall.S_IFREG})
	r.AddChild("slow", ch, false)
}

func (f *slowFile) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	return nil, fuse.FOPEN_DIRECT_IO, 0
}

func (f *slowFile) Read(ctx context.Context, fh gofs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	f.root.reading <- struct{}{}
	<-f.root.release
	return fuse.ReadResultData([]byte("late")), 0
}

// A connection cut off while a handler is at work over a ring: the
// handler's late answer is refused, the worker ends, and the unmount
// and the harness's checks (no descriptor left) go through.
func TestAbortWhileAHandlerWorks(t *testing.T) {
	root := &slowRoot{reading: make(chan struct{}, 1), release: make(chan struct{})}
	var ring interface{ Workers() int }
	t.Run("mount", func(t *testing.T) {
		m := fusetest.Mount(t, fusetest.Options{Transport: "uring"}, func() fusetest.FS {
			return fusetest.FS{Root: root}
		})
		ring = m.Ring()
		cat := exec.Command("cat", filepath.Join(m.Dir, "slow"))
		if err := cat.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cat.Wait() }()
		select {
		case <-root.reading:
		case <-time.After(time.Minute):
			cat.Process.Kill()
			t.Fatal("the read never reached the filesystem")
		}
		if err := m.Abort(); err != nil {
			t.Fatal(err)
		}
		close(root.release)
		select {
		case err := <-exited:
			if err == nil {
				t.Error("cat succeeded on an aborted connection")
			}
		case <-time.After(time.Minute):
			cat.Process.Kill()
			t.Fatal("cat hung after the abort")
		}
	})
	if ring != nil && ring.Workers() != 0 {
		t.Fatalf("%d workers still running after the unmount", ring.Workers())
	}
}
