package spill

// tier is where a File's bytes are: ramPages while the file is in RAM,
// plainDisk or sealedDisk once it has spilled. A tier stores, reads and
// frees pages and nothing more. It never charges an Accounter nor changes
// the pool's figures: File reserves room before a call that may allocate
// (asking missing what it would add) and settles afterwards from
// allocated, the same few lines for every tier, whatever the call did or
// however it failed.
//
// File checks the arguments first: offsets are >= 0, ranges are not empty
// and end by math.MaxInt64, reads lie within the size. Every method is
// called with the File's lock held; readAt and the queries may run under
// the read lock, in parallel with each other.
type tier interface {
	// allocated is the bytes in allocated pages, holes being free.
	allocated() int64
	// missing counts the pages of [off, end) not allocated: what writing
	// or allocating there would add.
	missing(off, end int64) int64
	// extent bounds the allocated pages from above: none lies at or past
	// it. Pages preallocated past the size lie below it too.
	extent() int64
	// next returns the first page >= pg that is allocated (data) or not
	// (!data), and false if there is none.
	next(pg int64, data bool) (int64, bool)

	// readAt fills p with the bytes at off; holes read as zeros.
	readAt(p []byte, off int64) (int, error)
	// writeAt writes p at off and returns how much of p reached the
	// tier; the pages that holds are allocated, no others.
	writeAt(p []byte, off int64) (int, error)
	// allocate backs [off, end) with allocated pages, like fallocate(2)
	// mode 0; keepSize is FALLOC_FL_KEEP_SIZE, for a tier that minds.
	allocate(off, end int64, keepSize bool) error
	// truncate shrinks the file to size: the pages past it are freed and
	// the tail of the last page kept reads as zeros from then on.
	truncate(size int64) error
	// punch zeroes [off, end), freeing the pages it covers whole.
	punch(off, end int64) error
	// close frees every page; the tier is not used again.
	close() error
}

// diskTier is a tier on disk, which a RAM file spills into.
type diskTier interface {
	tier
	// copyFrom writes the pages of r, a file of size bytes, into the tier,
	// which is new and empty.
	copyFrom(r *ramPages, size int64) error
}

var (
	_ tier     = (*ramPages)(nil)
	_ diskTier = (*plainDisk)(nil)
	_ diskTier = (*sealedDisk)(nil)
)

// pageSpan is the first and last page that [off, end) touches.
func pageSpan(off, end int64) (first, last int64) {
	return off / PageSize, (end - 1) / PageSize
}

// pagesIn is the first and last page that [off, end) covers whole; first >
// last if it covers none.
func pagesIn(off, end int64) (first, last int64) {
	return (off + PageSize - 1) / PageSize, end/PageSize - 1
}
