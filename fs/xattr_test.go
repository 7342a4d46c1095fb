package fs

import (
	"context"
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"

	"github.com/spoolfs/spoolfs/fs/control"
	"github.com/spoolfs/spoolfs/quota"
	"github.com/spoolfs/spoolfs/spill"
)

// heldOf recomputes from scratch what a list of attributes holds.
func heldOf(l xattrList) int64 {
	n := int64(cap(l)) * xattrSlot
	for _, x := range l {
		n += nameHeld(x.name) + int64(cap(x.value))
	}
	return n
}

// TestXattrHeldIsExact drives one node's attributes through random sets,
// replaces and removals, some of them refused by a small quota, and checks
// after each that what the node is charged is what its attributes hold, in
// the quota and in the RAM budget alike, and that it all goes back.
func TestXattrHeldIsExact(t *testing.T) {
	pool, err := spill.NewPool(spill.Config{Dir: t.TempDir(), Threshold: 1 << 20, RAMBudget: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	root := quota.NewRoot(quota.Limits{Bytes: 256 << 10})
	fsys, err := New(Config{Pool: pool, Quota: root, RootMode: 0o755})
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	var a attrs
	fsys.initAttrs(&a, context.Background(), nil, syscall.S_IFREG|0o644, fsys.users.Charge(root, 0))
	ctx := context.Background()
	rnd := rand.New(rand.NewPCG(1, 2))
	refused := 0
	for i := range 5000 {
		k := rnd.IntN(64) // 64 names, of lengths from 6 to 45 bytes
		name := fmt.Sprintf("user.%0*d", 1+k*7%40, k)
		var errno syscall.Errno
		// Phases of mostly sets and of mostly removals, so that the list
		// both grows and shrinks.
		remove := rnd.IntN(4) == 0
		if i/500%2 == 1 {
			remove = rnd.IntN(8) != 0
		}
		if remove {
			errno = a.Removexattr(ctx, name)
		} else {
			errno = a.Setxattr(ctx, name, make([]byte, rnd.IntN(maxXattrValue+1)>>rnd.IntN(6)), 0)
		}
		switch errno {
		case 0, control.ErrNoAttr:
		case syscall.ENOSPC:
			refused++
		default:
			t.Fatalf("op %d on %s: %v", i, name, errno)
		}
		a.xmu.Lock()
		held, want, charged := a.metaHeld, heldOf(a.xattrs), a.metaCharged.Load()
		a.xmu.Unlock()
		if held != want || charged != roundUp(want, metaUnit) {
			t.Fatalf("op %d: held %d, charged %d; the attributes hold %d", i, held, charged, want)
		}
		if used, ram := root.Usage().Bytes, pool.Stats().RAMBytes; used != charged || ram != charged {
			t.Fatalf("op %d: quota %d, RAM %d; the node is charged %d", i, used, ram, charged)
		}
	}
	if refused == 0 {
		t.Error("the quota never refused: the test did not reach the limit")
	}
	a.freeMeta()
	if used, ram := root.Usage().Bytes, pool.Stats().RAMBytes; used != 0 || ram != 0 {
		t.Errorf("after the node was freed: quota %d, RAM %d", used, ram)
	}
	if errno := a.Setxattr(ctx, "user.late", []byte("x"), 0); errno != syscall.ENOENT {
		t.Errorf("setxattr on a freed node: %v, want ENOENT", errno)
	}
}
