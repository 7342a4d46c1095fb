package spill

import (
	"errors"
	"io"
	"os"
)

// fallocate(2) modes, with Linux's values; other platforms interpret them.
const (
	fallocKeepSize  = 0x01
	fallocPunchHole = 0x02
)

// store is where a disk tier's bytes are: a dedicated unnamed file of
// the file's own (dedicatedFile), or its extents in one of the pool's
// shared files (sharedSpace). Offsets are the tier's own either way: the
// store places them.
type store interface {
	io.ReaderAt
	io.WriterAt
	// allocate reserves [off, off+n) on disk, like fallocate(2) mode 0,
	// or FALLOC_FL_KEEP_SIZE if keepSize.
	allocate(off, n int64, keepSize bool) error
	// punch zeroes [off, off+n), freeing the blocks it covers whole.
	punch(off, n int64) error
	// truncate zeroes everything from size on; a dedicated file is also
	// cut there.
	truncate(size int64) error
	// release frees everything, the disk's part off the request path;
	// the store is not used again.
	release()
	// file is the store's dedicated file, nil for a shared one.
	file() *os.File
}

// diskPages is what the two disk tiers share: the store of the spilled
// bytes, and the set of pages allocated in it, which answers for
// allocation and seeks without asking the disk.
type diskPages struct {
	st    store
	pages pageSet
}

func (d *diskPages) allocated() int64 { return d.pages.count * PageSize }

func (d *diskPages) missing(off, end int64) int64 {
	first, last := pageSpan(off, end)
	return d.pages.countMissing(first, last)
}

func (d *diskPages) extent() int64 { return d.pages.limit * PageSize }

// next looks only at the allocated pages: a spilled file may be huge and
// sparse, and its holes are never walked one page at a time.
func (d *diskPages) next(pg int64, data bool) (int64, bool) {
	if data {
		return d.pages.nextSet(pg)
	}
	return d.pages.nextClear(pg), true
}

func (d *diskPages) close() error {
	d.st.release()
	return nil
}

// plainDisk is the disk tier in the clear: page pg at offset pg*PageSize
// of its store, holes and zeros left to the file system.
type plainDisk struct {
	diskPages
	// stayShared: a dedicated file could not be made for this file (the
	// open or the copy failed); it stays in the shared files for good
	// rather than try again at every write.
	stayShared bool
}

// backingFile is the file's dedicated spill file, in which offset X of the
// file is offset X, or nil while its pages are in the shared files.
func (d *plainDisk) backingFile() *os.File { return d.st.file() }

func (d *plainDisk) readAt(p []byte, off int64) (int, error) {
	n, err := d.st.ReadAt(p, off)
	if n < len(p) && (err == nil || errors.Is(err, io.EOF)) {
		// The file is shorter on disk than its logical size only if the
		// tail is a hole that ftruncate has not been asked to cover;
		// that cannot happen, but zeros are the right answer if it does.
		clear(p[n:])
		n, err = len(p), nil
	}
	return n, err
}

// writeAt counts as allocated only the pages of what the disk took.
func (d *plainDisk) writeAt(p []byte, off int64) (int, error) {
	n, err := d.st.WriteAt(p, off)
	if n > 0 {
		d.pages.setRange(pageSpan(off, off+int64(n)))
	}
	return n, err
}

func (d *plainDisk) allocate(off, end int64, keepSize bool) error {
	if err := d.st.allocate(off, end-off, keepSize); err != nil {
		return err
	}
	d.pages.setRange(pageSpan(off, end))
	return nil
}

// truncate cuts the disk file no further than the extent: past it the file
// holds only zeros, and ext4 refuses a length past 16 TiB.
func (d *plainDisk) truncate(size int64) error {
	if err := d.st.truncate(min(size, d.extent())); err != nil {
		return err
	}
	d.pages.clearFrom((size + PageSize - 1) / PageSize)
	return nil
}

func (d *plainDisk) punch(off, end int64) error {
	if err := d.st.punch(off, end-off); err != nil {
		return err
	}
	if first, last := pagesIn(off, end); first <= last {
		d.pages.clearRange(first, last)
	}
	return nil
}

// copyFrom gathers runs of pages into large writes, and sets the disk
// file's size.
func (d *plainDisk) copyFrom(r *ramPages, size int64) error {
	const batch = 256 // pages per write: 1 MiB
	// No bigger than the file: a new file that spills at its first write
	// (threshold 0) has no pages, and zeroing a 1 MiB buffer for it was
	// most of what spilling it cost.
	buf := make([]byte, 0, min(batch, len(r.pages))*PageSize)
	start := int64(-1)
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		_, err := d.st.WriteAt(buf, start*PageSize)
		d.pages.setRange(start, start+int64(len(buf))/PageSize-1)
		buf, start = buf[:0], -1
		return err
	}
	for pg, page := range r.pages {
		if page == nil || len(buf) == cap(buf) {
			if err := flush(); err != nil {
				return err
			}
		}
		if page == nil {
			continue
		}
		if start < 0 {
			start = int64(pg)
		}
		buf = append(buf, page[:]...)
	}
	if err := flush(); err != nil {
		return err
	}
	// Pages past the size (fallocate with KEEP_SIZE) were written in full;
	// the size comes from the file, not from its last page.
	return d.st.truncate(max(size, int64(len(r.pages))*PageSize))
}

// dedicatedFile is a spill file of one file's own: a large plain file, so
// that offset X of the file is offset X of one disk file. It holds a
// descriptor, within the pool's budget for them.
type dedicatedFile struct {
	f    *os.File
	pool *Pool
}

func (d *dedicatedFile) ReadAt(p []byte, off int64) (int, error) { return d.f.ReadAt(p, off) }

// WriteAt writes p at off; if the disk is full while freed space waits for
// the reclaimer, it waits for it and tries the rest once more.
func (d *dedicatedFile) WriteAt(p []byte, off int64) (int, error) {
	n, err := d.f.WriteAt(p, off)
	if err != nil && d.pool.reclaim.waitIfFull(err) {
		var more int
		more, err = d.f.WriteAt(p[n:], off+int64(n))
		n += more
	}
	return n, err
}

func (d *dedicatedFile) allocate(off, n int64, keepSize bool) error {
	var mode uint32
	if keepSize {
		mode = fallocKeepSize
	}
	err := fallocate(d.f, mode, off, n)
	if err != nil && d.pool.reclaim.waitIfFull(err) {
		err = fallocate(d.f, mode, off, n)
	}
	return err
}

func (d *dedicatedFile) punch(off, n int64) error {
	return fallocate(d.f, fallocPunchHole|fallocKeepSize, off, n)
}

func (d *dedicatedFile) truncate(size int64) error { return d.f.Truncate(size) }

// release closes the file off the request path: its last close makes the
// file system free its blocks, which takes time on a large file.
func (d *dedicatedFile) release() {
	d.pool.reclaim.close(d.f, func() { d.pool.dedicated.Add(-1) })
}

func (d *dedicatedFile) file() *os.File { return d.f }
