package spill

import (
	"sync"
	"unsafe"
)

// ramPages is the RAM tier: a sparse file as a slice of page pointers, nil
// for holes. Only files no larger than the pool's threshold live here, so
// the slice is bounded by threshold/PageSize entries; appending copies
// pointers, never data.
type ramPages struct {
	cache *pageCache // where pages come from and go back to
	pages []*[PageSize]byte
	count int64 // non-nil pages
}

func newRAMPages(cache *pageCache) *ramPages { return &ramPages{cache: cache} }

func (r *ramPages) allocated() int64 { return r.count * PageSize }

func (r *ramPages) has(pg int64) bool {
	return pg < int64(len(r.pages)) && r.pages[pg] != nil
}

func (r *ramPages) missing(off, end int64) int64 {
	var n int64
	for pg := off / PageSize; pg*PageSize < end; pg++ {
		if !r.has(pg) {
			n++
		}
	}
	return n
}

func (r *ramPages) extent() int64 { return int64(len(r.pages)) * PageSize }

// next scans page by page: a RAM file has at most threshold/PageSize.
func (r *ramPages) next(pg int64, data bool) (int64, bool) {
	for ; pg < int64(len(r.pages)); pg++ {
		if r.has(pg) == data {
			return pg, true
		}
	}
	return pg, !data // every page past the slice is a hole
}

func (r *ramPages) readAt(p []byte, off int64) (int, error) {
	done := 0
	for done < len(p) {
		pos := off + int64(done)
		pg, in := pos/PageSize, pos%PageSize
		chunk := p[done:min(len(p), done+int(PageSize-in))]
		if r.has(pg) {
			copy(chunk, r.pages[pg][in:])
		} else {
			clear(chunk)
		}
		done += len(chunk)
	}
	return done, nil
}

// page returns page pg, allocating it (zeroed) if it is a hole.
func (r *ramPages) page(pg int64) *[PageSize]byte {
	if pg >= int64(len(r.pages)) {
		if pg >= int64(cap(r.pages)) {
			grown := make([]*[PageSize]byte, pg+1, max(2*cap(r.pages), int(pg+1)))
			copy(grown, r.pages)
			r.pages = grown
		}
		r.pages = r.pages[:pg+1]
	}
	if r.pages[pg] == nil {
		r.pages[pg] = r.cache.get()
		r.count++
	}
	return r.pages[pg]
}

// writeAt cannot fail: the File has charged the pool for the new pages.
func (r *ramPages) writeAt(p []byte, off int64) (int, error) {
	done := 0
	for done < len(p) {
		pos := off + int64(done)
		pg, in := pos/PageSize, pos%PageSize
		done += copy(writable(r.page(pg))[in:], p[done:])
	}
	return done, nil
}

// writable is page as a slice made without reading the page. Slicing the
// array pointer itself would first load from it (Go's nil check), and a
// new page's first touch being a read maps the kernel's shared zero page
// there, which the write that follows must fault out again, flushing the
// TLB of every CPU that runs one of the daemon's threads: two faults and
// an IPI per 4 KiB instead of one fault (TestRAMWriteFaultsEachNewPageOnce).
func writable(page *[PageSize]byte) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(page)), PageSize)
}

func (r *ramPages) allocate(off, end int64, _ bool) error {
	for pg := off / PageSize; pg*PageSize < end; pg++ {
		r.page(pg)
	}
	return nil
}

func (r *ramPages) freePage(pg int64) {
	if r.has(pg) {
		r.cache.put(r.pages[pg])
		r.pages[pg] = nil
		r.count--
	}
}

// truncate zeroes the tail of the last page kept, so that growing the file
// again shows zeros, not old bytes.
func (r *ramPages) truncate(size int64) error {
	keep := (size + PageSize - 1) / PageSize
	for pg := keep; pg < int64(len(r.pages)); pg++ {
		r.freePage(pg)
	}
	if keep < int64(len(r.pages)) {
		r.pages = r.pages[:keep]
	}
	if in := size % PageSize; in != 0 && r.has(size/PageSize) {
		clear(r.pages[size/PageSize][in:])
	}
	return nil
}

func (r *ramPages) punch(off, end int64) error {
	for pg := off / PageSize; pg*PageSize < end; pg++ {
		start, stop := max(off, pg*PageSize), min(end, (pg+1)*PageSize)
		if start == pg*PageSize && stop == (pg+1)*PageSize {
			r.freePage(pg)
		} else if r.has(pg) {
			clear(r.pages[pg][start-pg*PageSize : stop-pg*PageSize])
		}
	}
	return nil
}

// close gives every page back to the cache.
func (r *ramPages) close() error {
	for i, pg := range r.pages {
		if pg != nil {
			r.cache.put(pg)
			r.pages[i] = nil
		}
	}
	r.pages, r.count = nil, 0
	return nil
}

// pageCache recycles the RAM pages of a pool's files: a page one file frees
// is the next one another allocates, without the garbage collector.
type pageCache struct{ free sync.Pool }

// get returns a zeroed page.
func (c *pageCache) get() *[PageSize]byte {
	if pg, ok := c.free.Get().(*[PageSize]byte); ok {
		clear(pg[:])
		return pg
	}
	return new([PageSize]byte)
}

func (c *pageCache) put(pg *[PageSize]byte) { c.free.Put(pg) }
