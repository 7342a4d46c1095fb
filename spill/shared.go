package spill

import (
	"errors"
	"io"
	"math"
	"math/bits"
	"os"
	"slices"
	"sync"
	"sync/atomic"
)

// The shared placement: many spilled files' pages in a few unnamed files of
// the pool, so that spilled files cost no descriptor each. A file's pages
// are grouped in extents, each a block of the buddy allocator in one
// shared file: extent 0 holds page 0, extent k (1..8) pages [2^(k-1), 2^k),
// and every later extent 256 pages (1 MiB). A small file takes no more
// address space than twice its pages; a large one is laid out in 1 MiB
// runs, so reading it in order reads the shared file in order.
const extentPages = 1 << maxOrder

// maxSharedUnits bounds a shared file's address space: ext4 takes files up
// to 16 TiB; past this the shared file refuses to grow.
const maxSharedUnits = (8 << 40) / slotSize

// errSharedFull: a shared file's address space is used up.
var errSharedFull = errors.New("spill: shared spill file full")

// extentOf returns the extent that holds unit u (a page, or a sealed slot),
// its first unit and its length in units.
func extentOf(u int64) (idx, first, length int64) {
	switch {
	case u == 0:
		return 0, 0, 1
	case u < extentPages:
		k := int64(bits.Len64(uint64(u)))
		return k, 1 << (k - 1), 1 << (k - 1)
	}
	return maxOrder + u/extentPages, u / extentPages * extentPages, extentPages
}

// extentSpan is the first unit and the length of extent idx.
func extentSpan(idx int64) (first, length int64) {
	switch {
	case idx == 0:
		return 0, 1
	case idx <= maxOrder:
		return 1 << (idx - 1), 1 << (idx - 1)
	}
	return (idx - maxOrder) * extentPages, extentPages
}

// sharedFile is one of the pool's shared spill files: an unnamed file and
// the allocator that places extents in it. mu guards alloc; the file
// itself is read and written without it, each extent by its owner alone.
type sharedFile struct {
	f    *os.File
	unit int64 // bytes per unit: PageSize, or slotSize when sealed
	// closing: the pool is closing and will close f, which frees all of
	// its blocks at once: frees have nothing left to do.
	closing atomic.Bool

	mu    sync.Mutex
	alloc buddy // guarded by mu
}

// place allocates 2^order units.
func (s *sharedFile) place(order int) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.alloc.top+extentPages > maxSharedUnits && !s.alloc.hasFree(order) {
		return 0, errSharedFull
	}
	return s.alloc.alloc(order), nil
}

// free punches the holes of extents their file no longer uses and gives
// them back to the allocator, only then: an extent is never handed out
// before its old bytes are gone, so a new owner reads zeros in its holes.
// Runs of extents that lie end to end take one punch.
func (s *sharedFile) free(exts []extent) {
	if s.closing.Load() {
		return
	}
	for i := 0; i < len(exts); {
		start, n := s.bytesOf(exts[i])
		j := i + 1
		for ; j < len(exts); j++ {
			next, m := s.bytesOf(exts[j])
			if next != start+n {
				break
			}
			n += m
		}
		// A failed punch leaves bytes on disk that no one can read back
		// as theirs: a new owner's holes would show them. Such a block is
		// never handed out again.
		if fallocate(s.f, fallocPunchHole|fallocKeepSize, start, n) != nil {
			exts = slices.Delete(exts, i, j)
			continue
		}
		i = j
	}
	s.mu.Lock()
	for _, e := range exts {
		_, length := extentSpan(e.idx)
		s.alloc.release(e.at, bits.TrailingZeros64(uint64(length)))
	}
	s.mu.Unlock()
}

// bytesOf is where extent e lies in the shared file, in bytes.
func (s *sharedFile) bytesOf(e extent) (off, n int64) {
	_, length := extentSpan(e.idx)
	return e.at * s.unit, length * s.unit
}

// extent is one extent of a file in a shared file: its index in the file
// and the first unit of its block in the shared file. 16 bytes.
type extent struct{ idx, at int64 }

// sharedSpace is one file's bytes in a shared file, addressed as if the
// file had the shared file to itself: the tier's offset off is unit
// off/unit, byte off%unit of it. Its extents are kept sorted by index.
// Called under the File's lock: writes alone, reads in parallel.
type sharedSpace struct {
	sf   *sharedFile
	exts []extent
	pool *Pool // whose reclaimer frees extents off the request path
}

// find returns the position of extent idx in s.exts and whether it is
// there.
func (s *sharedSpace) find(idx int64) (int, bool) {
	if n := len(s.exts); n > 0 && s.exts[n-1].idx < idx {
		return n, false // appending, the common case
	}
	return slices.BinarySearchFunc(s.exts, idx, func(e extent, idx int64) int {
		switch {
		case e.idx < idx:
			return -1
		case e.idx > idx:
			return 1
		}
		return 0
	})
}

// piece calls fn for each part of [off, off+n) that lies in one extent,
// with where that part is in the shared file (-1 for an extent not
// placed). With place, missing extents are placed first.
func (s *sharedSpace) each(off, n int64, place bool, fn func(off, n, at int64) error) error {
	unit := s.sf.unit
	for n > 0 {
		u := off / unit
		idx, first, length := extentOf(u)
		// What is left of the extent, counted from u: the extent's end
		// in bytes may lie past math.MaxInt64 (the last sealed slots).
		part := min(n, (first+length-u)*unit-off%unit)
		at := int64(-1)
		i, ok := s.find(idx)
		if !ok && place {
			order := bits.TrailingZeros64(uint64(length))
			start, err := s.sf.place(order)
			if err != nil {
				return err
			}
			s.exts = slices.Insert(s.exts, i, extent{idx, start})
			ok = true
		}
		if ok {
			at = s.exts[i].at*unit + off - first*unit
		}
		if err := fn(off, part, at); err != nil {
			return err
		}
		off += part
		n -= part
	}
	return nil
}

// ReadAt reads p at off. Extents not placed, and holes in those that are,
// read as zeros: no read is ever short.
func (s *sharedSpace) ReadAt(p []byte, off int64) (int, error) {
	base := off
	err := s.each(off, int64(len(p)), false, func(off, n, at int64) error {
		b := p[off-base : off-base+n]
		if at < 0 {
			clear(b)
			return nil
		}
		got, err := s.sf.f.ReadAt(b, at)
		if errors.Is(err, io.EOF) { // the shared file ends in a hole
			clear(b[got:])
			err = nil
		}
		return err
	})
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// WriteAt writes p at off, placing the extents it needs: one pwrite per
// extent it touches. If the disk is full while freed space waits for the
// reclaimer, it waits for it and tries the rest once more.
func (s *sharedSpace) WriteAt(p []byte, off int64) (int, error) {
	done, err := s.writeAt(p, off)
	if err != nil && s.pool.reclaim.waitIfFull(err) {
		var more int
		more, err = s.writeAt(p[done:], off+int64(done))
		done += more
	}
	return done, err
}

func (s *sharedSpace) writeAt(p []byte, off int64) (int, error) {
	done := 0
	err := s.each(off, int64(len(p)), true, func(pos, n, at int64) error {
		w, err := s.sf.f.WriteAt(p[pos-off:pos-off+n], at)
		done += w
		return err
	})
	return done, err
}

// allocate places the extents of [off, off+n) and reserves their blocks
// on disk. It never keeps the shared file's size: ext4 does not punch
// holes past the end of a file, so blocks there could never be freed.
func (s *sharedSpace) allocate(off, n int64, _ bool) error {
	alloc := func() error {
		return s.each(off, n, true, func(_, n, at int64) error {
			return fallocate(s.sf.f, 0, at, n)
		})
	}
	err := alloc()
	if err != nil && s.pool.reclaim.waitIfFull(err) {
		err = alloc()
	}
	return err
}

// punch zeroes [off, off+n). Extents it covers whole leave the file at
// once and are freed by the pool's reclaimer; the parts of others are
// punched here, as the file still reads them.
func (s *sharedSpace) punch(off, n int64) error {
	end := off + n
	if n <= 0 || end < off {
		end = math.MaxInt64
	}
	unit := s.sf.unit
	i, _ := s.find(extentIndex(off / unit))
	var whole []extent
	kept := s.exts[:i]
	var err error
	for _, e := range s.exts[i:] {
		lo, hi := extentBytes(e.idx, unit)
		switch {
		case lo >= end || err != nil:
			kept = append(kept, e)
		case off <= lo && end >= hi:
			whole = append(whole, e)
		default:
			from, to := max(lo, off), min(hi, end)
			err = fallocate(s.sf.f, fallocPunchHole|fallocKeepSize, e.at*unit+from-lo, to-from)
			kept = append(kept, e)
		}
	}
	clear(s.exts[len(kept):]) // kept shares s.exts: drop what moved
	s.exts = kept
	if len(whole) > 0 {
		s.pool.reclaim.free(s.sf, whole)
	}
	return err
}

// extentBytes is where extent idx lies in a file's own offsets, [lo, hi),
// hi cut at math.MaxInt64: the last sealed slots' extent ends past it.
func extentBytes(idx, unit int64) (lo, hi int64) {
	first, length := extentSpan(idx)
	lo = first * unit
	return lo, lo + min(length*unit, math.MaxInt64-lo)
}

// extentIndex is the index of the extent that holds unit u.
func extentIndex(u int64) int64 {
	idx, _, _ := extentOf(u)
	return idx
}

// truncate zeroes everything from size on, freeing the extents past it.
func (s *sharedSpace) truncate(size int64) error { return s.punch(size, -1) }

// release frees every extent, off the request path.
func (s *sharedSpace) release() {
	if len(s.exts) > 0 {
		s.pool.reclaim.free(s.sf, s.exts)
	}
	s.exts = nil
}

// file is nil: the shared file is not this file's alone.
func (s *sharedSpace) file() *os.File { return nil }
