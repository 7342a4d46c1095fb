package spill

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestBuddy places and frees blocks of every order at random and checks
// that no two live blocks overlap and that freeing everything merges the
// space back into whole largest blocks.
func TestBuddy(t *testing.T) {
	var b buddy
	r := rand.New(rand.NewPCG(1, 2))
	type block struct {
		start int64
		order int
	}
	var live []block
	owner := map[int64]int{} // unit -> index in live+1
	for step := range 20000 {
		if len(live) > 0 && r.IntN(2) == 0 {
			i := r.IntN(len(live))
			blk := live[i]
			for u := blk.start; u < blk.start+1<<blk.order; u++ {
				delete(owner, u)
			}
			b.release(blk.start, blk.order)
			live = slices.Delete(live, i, i+1)
			continue
		}
		order := r.IntN(maxOrder + 1)
		start := b.alloc(order)
		if start%(1<<order) != 0 || start+1<<order > b.top {
			t.Fatalf("step %d: block of order %d at %d (top %d)", step, order, start, b.top)
		}
		for u := start; u < start+1<<order; u++ {
			if _, ok := owner[u]; ok {
				t.Fatalf("step %d: unit %d handed out twice", step, u)
			}
			owner[u] = 1
		}
		live = append(live, block{start, order})
	}
	var used int64
	for _, blk := range live {
		used += 1 << blk.order
	}
	if used+b.freeUnits() != b.top {
		t.Fatalf("%d units used, %d free, top %d", used, b.freeUnits(), b.top)
	}
	for _, blk := range live {
		b.release(blk.start, blk.order)
	}
	if n := int64(len(b.free[maxOrder])) << maxOrder; n != b.top {
		t.Fatalf("after freeing everything: %d units in largest blocks, top %d", n, b.top)
	}
}
