package spill

// ramPages is a sparse RAM file: a slice of page pointers, nil for holes.
// Only files no larger than the pool's threshold live here, so the slice is
// bounded by threshold/PageSize entries; appending copies pointers, never
// data. All methods are called with the owning File's lock held.
type ramPages struct {
	pages []*[PageSize]byte
	count int64 // non-nil pages
}

func (r *ramPages) allocated() int64 { return r.count * PageSize }

func (r *ramPages) has(pg int64) bool {
	return pg < int64(len(r.pages)) && r.pages[pg] != nil
}

// newPagesIn counts the pages of [off, end) that are not yet allocated.
func (r *ramPages) newPagesIn(off, end int64) int64 {
	var n int64
	for pg := off / PageSize; pg*PageSize < end; pg++ {
		if !r.has(pg) {
			n++
		}
	}
	return n
}

func (r *ramPages) readAt(p []byte, off int64) int {
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
	return done
}

// page returns page pg, allocating it (zeroed) if it is a hole. The caller
// has already charged the pool and the accounter for it.
func (r *ramPages) page(pool *Pool, pg int64) *[PageSize]byte {
	if pg >= int64(len(r.pages)) {
		if pg >= int64(cap(r.pages)) {
			grown := make([]*[PageSize]byte, pg+1, max(2*cap(r.pages), int(pg+1)))
			copy(grown, r.pages)
			r.pages = grown
		}
		r.pages = r.pages[:pg+1]
	}
	if r.pages[pg] == nil {
		r.pages[pg] = pool.newPage()
		r.count++
	}
	return r.pages[pg]
}

func (r *ramPages) writeAt(pool *Pool, p []byte, off int64) int {
	done := 0
	for done < len(p) {
		pos := off + int64(done)
		pg, in := pos/PageSize, pos%PageSize
		done += copy(r.page(pool, pg)[in:], p[done:])
	}
	return done
}

func (r *ramPages) allocate(pool *Pool, off, end int64) {
	for pg := off / PageSize; pg*PageSize < end; pg++ {
		r.page(pool, pg)
	}
}

// freePage drops page pg and returns the bytes freed.
func (r *ramPages) freePage(pool *Pool, pg int64) int64 {
	if !r.has(pg) {
		return 0
	}
	pool.freePage(r.pages[pg])
	r.pages[pg] = nil
	r.count--
	return PageSize
}

// truncate drops every page past size and zeroes the tail of the last one,
// so that growing the file again shows zeros, not old bytes. It returns the
// bytes freed.
func (r *ramPages) truncate(pool *Pool, size int64) int64 {
	keep := (size + PageSize - 1) / PageSize
	var freed int64
	for pg := keep; pg < int64(len(r.pages)); pg++ {
		freed += r.freePage(pool, pg)
	}
	if keep < int64(len(r.pages)) {
		r.pages = r.pages[:keep]
	}
	if in := size % PageSize; in != 0 && r.has(size/PageSize) {
		clear(r.pages[size/PageSize][in:])
	}
	return freed
}

// punch zeroes [off, end), freeing the pages it covers whole, and returns
// the bytes freed.
func (r *ramPages) punch(pool *Pool, off, end int64) int64 {
	var freed int64
	for pg := off / PageSize; pg*PageSize < end; pg++ {
		start, stop := max(off, pg*PageSize), min(end, (pg+1)*PageSize)
		if start == pg*PageSize && stop == (pg+1)*PageSize {
			freed += r.freePage(pool, pg)
		} else if r.has(pg) {
			clear(r.pages[pg][start-pg*PageSize : stop-pg*PageSize])
		}
	}
	return freed
}

// free drops every page and returns the bytes freed.
func (r *ramPages) free(pool *Pool) int64 {
	freed := r.allocated()
	for i, pg := range r.pages {
		if pg != nil {
			pool.freePage(pg)
			r.pages[i] = nil
		}
	}
	r.pages, r.count = nil, 0
	return freed
}
