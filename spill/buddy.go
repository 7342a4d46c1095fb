package spill

// maxOrder is the largest block the buddy allocator hands out: 2^8 units,
// 1 MiB of pages (or 256 sealed slots). The address space of a shared file
// grows a block of this size at a time.
const maxOrder = 8

// buddy places blocks of 2^order units in the address space of one shared
// file. Freed blocks merge with their free buddy, so space freed by small
// files is reused whole by large ones. It is not safe for concurrent use:
// sharedFile.mu guards it.
type buddy struct {
	free [maxOrder + 1][]int64       // free blocks of each order, by first unit
	at   [maxOrder + 1]map[int64]int // a free block's index in free
	top  int64                       // units ever handed out: the address space
}

// alloc returns the first unit of a free block of 2^order units, taking a
// new largest block past top if no free one is large enough.
func (b *buddy) alloc(order int) int64 {
	k := order
	for k <= maxOrder && len(b.free[k]) == 0 {
		k++
	}
	var start int64
	if k > maxOrder {
		start, k = b.top, maxOrder
		b.top += 1 << maxOrder
	} else {
		start = b.free[k][len(b.free[k])-1]
		b.remove(k, start)
	}
	for k > order { // give back the upper halves
		k--
		b.push(k, start+1<<k)
	}
	return start
}

// hasFree reports whether a block of 2^order units is free, so that alloc
// need not grow the address space.
func (b *buddy) hasFree(order int) bool {
	for k := order; k <= maxOrder; k++ {
		if len(b.free[k]) > 0 {
			return true
		}
	}
	return false
}

// release frees the block of 2^order units at start, merging it with its
// buddy for as long as that is free.
func (b *buddy) release(start int64, order int) {
	for order < maxOrder {
		mate := start ^ (1 << order)
		if _, ok := b.at[order][mate]; !ok {
			break
		}
		b.remove(order, mate)
		start = min(start, mate)
		order++
	}
	b.push(order, start)
}

func (b *buddy) push(order int, start int64) {
	if b.at[order] == nil {
		b.at[order] = make(map[int64]int)
	}
	b.at[order][start] = len(b.free[order])
	b.free[order] = append(b.free[order], start)
}

// remove takes a free block off its list, moving the last one into its place.
func (b *buddy) remove(order int, start int64) {
	list := b.free[order]
	i := b.at[order][start]
	last := list[len(list)-1]
	list[i] = last
	b.at[order][last] = i
	b.free[order] = list[:len(list)-1]
	delete(b.at[order], start)
}

// freeUnits is the units in free blocks.
func (b *buddy) freeUnits() int64 {
	var n int64
	for k, list := range b.free {
		n += int64(len(list)) << k
	}
	return n
}
