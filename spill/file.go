package spill

import (
	"container/list"
	"fmt"
	"io"
	"sync"
)

// Accounter is charged for the pages a file allocates, before it allocates
// them. quota.Account satisfies it.
type Accounter interface {
	Reserve(bytes int64) error
	Release(bytes int64)
}

// File is the bytes of one file, in RAM or on disk.
type File struct {
	pool *Pool

	mu sync.RWMutex
	// Guarded by mu:
	acct      Accounter
	size      int64
	allocated int64     // bytes in allocated pages, in either tier
	ram       *ramPages // non-nil while the file is in RAM
	disk      *diskFile // non-nil once the file has spilled
	closed    bool

	lruElem *list.Element // guarded by pool.mu
}

// NewFile returns an empty file in RAM, charging acct for its pages.
func (p *Pool) NewFile(acct Accounter) *File {
	f := &File{pool: p, acct: acct, ram: &ramPages{}}
	p.files.Add(1)
	p.register(f)
	return f
}

// invalid is an ErrInvalid for a call and its arguments.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// badRange checks the range of length bytes at off: not empty, not before
// the start, not past the largest offset.
func badRange(call string, off, length int64) error {
	if off < 0 || length <= 0 || off+length < off {
		return invalid("%s: offset %d, length %d", call, off, length)
	}
	return nil
}

// Size is the file's length in bytes.
func (f *File) Size() int64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.size
}

// Allocated is the bytes of storage the file holds (whole pages; holes are
// free), the figure behind st_blocks and the quota.
func (f *File) Allocated() int64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.allocated
}

// OnDisk reports whether the file has spilled.
func (f *File) OnDisk() bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.disk != nil
}

// SetAccounter moves the file's charge from its accounter to acct, failing
// (and changing nothing) if acct refuses it.
func (f *File) SetAccounter(acct Accounter) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := acct.Reserve(f.allocated); err != nil {
		return err
	}
	f.acct.Release(f.allocated)
	f.acct = acct
	return nil
}

// ReadAt reads len(p) bytes at off. Holes read as zeros. Like io.ReaderAt it
// returns io.EOF when fewer than len(p) bytes remain.
func (f *File) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, invalid("ReadAt: offset %d", off)
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.closed {
		return 0, ErrClosed
	}
	if off >= f.size {
		return 0, io.EOF
	}
	want := min(int64(len(p)), f.size-off)
	var n int
	var err error
	if f.ram != nil {
		f.pool.touch(f)
		n = f.ram.readAt(p[:want], off)
	} else {
		n, err = f.disk.readAt(p[:want], off)
	}
	if err == nil && n < len(p) {
		err = io.EOF
	}
	return n, err
}

// WriteAt writes p at off, growing the file if needed. If the file would
// pass the threshold, or no RAM can be found for it, it spills first; if
// that or the accounter fails, nothing is written.
func (f *File) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) < off {
		return 0, invalid("WriteAt: offset %d, length %d", off, len(p))
	}
	if len(p) == 0 {
		return 0, nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return 0, ErrClosed
	}
	end := off + int64(len(p))
	if err := f.makeRoomLocked(off, end); err != nil {
		return 0, err
	}
	var n int
	var err error
	if f.ram != nil {
		n = f.ram.writeAt(f.pool, p, off)
	} else {
		n, err = f.disk.writeAt(p, off, f.acct, f.pool)
	}
	f.refreshLocked()
	// A write that wrote nothing (refused, or failed) leaves the size alone:
	// off+0 would otherwise grow the file to off.
	if end := off + int64(n); n > 0 && end > f.size {
		f.size = end
	}
	return n, err
}

// makeRoomLocked prepares to allocate the pages of [off, end): it spills
// the file if it must, then charges the accounter (and, in RAM, the pool)
// for the new pages, so that the write itself cannot fail for lack of room.
// On disk the charge happens inside diskFile, page by page of the write.
func (f *File) makeRoomLocked(off, end int64) error {
	if f.ram != nil && max(end, f.size) > f.pool.threshold {
		if err := f.spillLocked(); err != nil {
			return err
		}
	}
	if f.ram == nil {
		return nil
	}
	f.pool.touch(f) // a write is a use, for the LRU order as much as a read
	grow := f.ram.newPagesIn(off, end) * PageSize
	if grow == 0 {
		return nil
	}
	if err := f.pool.reserveRAM(f, grow); err != nil {
		if err := f.spillLocked(); err != nil {
			return err
		}
		return nil
	}
	if err := f.acct.Reserve(grow); err != nil {
		f.pool.releaseRAM(grow)
		return err
	}
	return nil
}

// refreshLocked folds a tier's allocation change into the file's figures.
func (f *File) refreshLocked() {
	var now int64
	if f.ram != nil {
		now = f.ram.allocated()
	} else {
		now = f.disk.allocated()
	}
	f.allocated = now
}

// Truncate sets the file's size. Shrinking frees the pages past the new end
// and zeroes the tail of the last page; growing allocates nothing.
func (f *File) Truncate(size int64) error {
	if size < 0 {
		return invalid("Truncate: size %d", size)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return ErrClosed
	}
	if f.ram != nil && size > f.pool.threshold {
		if err := f.spillLocked(); err != nil {
			return err
		}
	}
	if size >= f.size {
		// Growing allocates nothing and frees nothing: the new bytes are a
		// hole, and pages preallocated past the old end (fallocate with
		// KEEP_SIZE) stay allocated, as on tmpfs.
		f.size = size
		return nil
	}
	if f.ram != nil {
		freed := f.ram.truncate(f.pool, size)
		f.pool.releaseRAM(freed)
		f.acct.Release(freed)
	} else if err := f.disk.truncate(f.size, size, f.acct, f.pool); err != nil {
		return err
	}
	f.size = size
	f.refreshLocked()
	return nil
}

// PunchHole zeroes [off, off+length) without changing the size, freeing the
// pages it covers whole.
func (f *File) PunchHole(off, length int64) error {
	if err := badRange("PunchHole", off, length); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return ErrClosed
	}
	// The range may run to the end of the last page rather than the size,
	// and past it over pages preallocated with KEEP_SIZE: a punch that
	// covers them frees them, as on Linux; their bytes are zeros anyway.
	end := min(off+length, max((f.size+PageSize-1)/PageSize*PageSize, f.extentLocked()))
	if off >= end {
		return nil
	}
	if f.ram != nil {
		freed := f.ram.punch(f.pool, off, end)
		f.pool.releaseRAM(freed)
		f.acct.Release(freed)
	} else if err := f.disk.punch(off, end, f.acct, f.pool); err != nil {
		return err
	}
	f.refreshLocked()
	return nil
}

// extentLocked bounds the allocated pages from above: pages preallocated
// past the size with KEEP_SIZE lie below it too.
func (f *File) extentLocked() int64 {
	if f.ram != nil {
		return int64(len(f.ram.pages)) * PageSize
	}
	return f.disk.pages.limit * PageSize
}

// Allocate makes sure [off, off+length) is backed by allocated pages, like
// fallocate(2) mode 0; unless keepSize, the file grows to cover the range.
func (f *File) Allocate(off, length int64, keepSize bool) error {
	if err := badRange("Allocate", off, length); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return ErrClosed
	}
	end := off + length
	if err := f.makeRoomLocked(off, end); err != nil {
		return err
	}
	var err error
	if f.ram != nil {
		f.ram.allocate(f.pool, off, end)
	} else {
		err = f.disk.allocate(off, end, keepSize, f.acct, f.pool)
	}
	f.refreshLocked()
	if err == nil && !keepSize && end > f.size {
		f.size = end
	}
	return err
}

// SeekData returns the first offset >= off that holds data, or ErrNoData.
func (f *File) SeekData(off int64) (int64, error) { return f.seek(off, true) }

// SeekHole returns the first offset >= off in a hole (the end of the file
// counts as one), or ErrNoData if off is at or past the end.
func (f *File) SeekHole(off int64) (int64, error) { return f.seek(off, false) }

func (f *File) seek(off int64, data bool) (int64, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.closed {
		return 0, ErrClosed // both tiers are gone
	}
	if off < 0 || off >= f.size {
		return 0, ErrNoData
	}
	lastPage := (f.size - 1) / PageSize
	pg, found := off/PageSize, false
	if f.ram != nil {
		// At most threshold/PageSize pages: a plain scan will do.
		for ; pg <= lastPage; pg++ {
			if f.ram.has(pg) == data {
				found = true
				break
			}
		}
	} else if data {
		// A spilled file may be huge and sparse: look only at the
		// allocated pages, never walk the holes one page at a time.
		pg, found = f.disk.pages.nextSet(pg)
	} else {
		pg, found = f.disk.pages.nextClear(pg), true
	}
	switch {
	case found && pg <= lastPage:
		return max(off, pg*PageSize), nil
	case data:
		return 0, ErrNoData
	default:
		return f.size, nil
	}
}

// Close frees the file's RAM or disk space and credits its accounter.
// Further calls fail with ErrClosed.
func (f *File) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil
	}
	f.closed = true
	f.pool.files.Add(-1)
	f.pool.unregister(f)
	f.acct.Release(f.allocated)
	f.allocated = 0
	if f.ram != nil {
		f.pool.removeFromLRU(f)
		f.pool.releaseRAM(f.ram.free(f.pool))
		f.ram = nil
		return nil
	}
	f.pool.diskFiles.Add(-1)
	f.pool.diskBytes.Add(-f.disk.allocated())
	err := f.disk.close()
	f.disk = nil
	return err
}

// spillLocked moves a RAM file to disk. On failure the file stays in RAM,
// unchanged.
func (f *File) spillLocked() error {
	if f.ram == nil {
		return nil
	}
	d, err := f.pool.newDiskFile()
	if err != nil {
		return err
	}
	if err := d.copyFrom(f.ram, f.size); err != nil {
		d.close()
		return err
	}
	f.pool.removeFromLRU(f)
	f.pool.releaseRAM(f.ram.free(f.pool))
	f.ram = nil
	f.disk = d
	f.pool.spills.Add(1)
	f.pool.diskFiles.Add(1)
	f.pool.diskBytes.Add(d.allocated())
	return nil
}
