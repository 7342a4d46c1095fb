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
//
// It is the one place where a file's storage is accounted for: before an
// operation that may allocate, it reserves the pages from the accounter
// (and, in RAM, from the pool's budget), spilling first if it must; it then
// calls its tier, which only stores bytes; after every call to the tier it
// settles, giving back what was reserved and not used or what was freed,
// and telling the pool.
type File struct {
	pool *Pool

	mu sync.RWMutex
	// Guarded by mu:
	acct      Accounter
	size      int64
	allocated int64 // bytes in allocated pages, as the accounts know them
	tier      tier  // *ramPages while in RAM; nil once closed
	closed    bool
	pins      int // PinBacking's pins not yet undone: the tier stays (backing.go)

	lruElem *list.Element // guarded by pool.mu
}

// NewFile returns an empty file in RAM, charging acct for its pages.
func (p *Pool) NewFile(acct Accounter) *File {
	f := &File{pool: p, acct: acct, tier: newRAMPages(&p.pages)}
	p.register(f)
	return f
}

// invalid is an ErrInvalid for a call and its arguments.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// tooLarge is an ErrTooLarge for a call that would make a file end bytes
// long.
func tooLarge(call string, end int64) error {
	return fmt.Errorf("%w: %s to %d bytes, past %d", ErrTooLarge, call, end, int64(MaxSize))
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
	_, ok := f.tier.(diskTier)
	return ok
}

// inRAMLocked reports whether the file's tier is RAM (not a closed file).
func (f *File) inRAMLocked() bool {
	_, ok := f.tier.(*ramPages)
	return ok
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
	if f.inRAMLocked() {
		f.pool.touch(f)
	}
	want := min(int64(len(p)), f.size-off)
	n, err := f.tier.readAt(p[:want], off)
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
	if end := off + int64(len(p)); end > MaxSize {
		if off >= MaxSize {
			return 0, tooLarge("WriteAt", end)
		}
		// As write(2) at the file size limit: what fits, then the error.
		n, err := f.WriteAt(p[:MaxSize-off], off)
		if err == nil {
			err = tooLarge("WriteAt", end)
		}
		return n, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return 0, ErrClosed
	}
	if err := f.fillGapLocked(f.size, off); err != nil {
		return 0, err
	}
	end := off + int64(len(p))
	charged, err := f.reserveLocked(off, end)
	if err != nil {
		return 0, err
	}
	n, err := f.tier.writeAt(p, off)
	f.settleLocked(charged)
	// A write that wrote nothing (refused, or failed) leaves the size alone:
	// off+0 would otherwise grow the file to off.
	if end := off + int64(n); n > 0 && end > f.size {
		f.size = end
	}
	return n, err
}

// Truncate sets the file's size. Shrinking frees the pages past the new end
// and zeroes the tail of the last page; growing allocates nothing.
func (f *File) Truncate(size int64) error {
	if size < 0 {
		return invalid("Truncate: size %d", size)
	}
	if size > MaxSize {
		return tooLarge("Truncate", size)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return ErrClosed
	}
	if f.inRAMLocked() && size > f.pool.threshold.Load() {
		if err := f.spillLocked(); err != nil {
			return err
		}
	}
	if size >= f.size {
		// Growing allocates nothing and frees nothing: the new bytes are a
		// hole, and pages preallocated past the old end (fallocate with
		// KEEP_SIZE) stay allocated, as on tmpfs. A pinned file stays
		// dense (backing.go).
		if err := f.fillGapLocked(f.size, size); err != nil {
			return err
		}
		if err := f.keepLengthLocked(size); err != nil {
			return err
		}
		f.size = size
		return nil
	}
	err := f.tier.truncate(size)
	f.settleLocked(0)
	if err != nil {
		return err
	}
	f.size = size
	return f.keepLengthLocked(size)
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
	// The range may run past the size over pages preallocated with
	// KEEP_SIZE: a punch that covers them frees them, as on Linux; their
	// bytes are zeros anyway. Past the extent nothing is allocated in any
	// tier, and the disk need not hear of it: ext4 refuses a range that
	// ends past 16 TiB.
	end := min(off+length, f.tier.extent())
	if f.pins > 0 && off < f.size {
		// A pinned file stays dense (backing.go): zeros below the size.
		zeroEnd := min(end, f.size)
		if err := f.zeroLocked(off, zeroEnd); err != nil {
			return err
		}
		off = zeroEnd
	}
	if off >= end {
		return nil
	}
	err := f.tier.punch(off, end)
	f.settleLocked(0) // what a punch frees before it fails is freed
	return err
}

// Allocate makes sure [off, off+length) is backed by allocated pages, like
// fallocate(2) mode 0; unless keepSize, the file grows to cover the range.
func (f *File) Allocate(off, length int64, keepSize bool) error {
	if err := badRange("Allocate", off, length); err != nil {
		return err
	}
	if off+length > MaxSize {
		return tooLarge("Allocate", off+length)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return ErrClosed
	}
	end := off + length
	if !keepSize {
		if err := f.fillGapLocked(f.size, off); err != nil {
			return err
		}
	}
	charged, err := f.reserveLocked(off, end)
	if err != nil {
		return err
	}
	err = f.tier.allocate(off, end, keepSize)
	f.settleLocked(charged)
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
	pg, found := f.tier.next(off/PageSize, data)
	switch {
	case found && pg <= (f.size-1)/PageSize:
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
	inRAM := f.inRAMLocked()
	err := f.tier.close()
	f.closed, f.tier = true, nil
	f.acct.Release(f.allocated)
	f.pool.forget(f, inRAM, f.allocated)
	f.allocated = 0
	return err
}

// reserveLocked makes room for the pages of [off, end) not yet allocated,
// before a write or an allocate puts them there: it spills the file if it
// would pass the threshold, or if the pool finds no RAM for them, and
// charges the accounter (and, in RAM, the pool's budget), so that no tier
// allocates a page nobody was charged for. It returns the bytes reserved,
// for settleLocked.
func (f *File) reserveLocked(off, end int64) (int64, error) {
	if f.inRAMLocked() && max(end, f.size) > f.pool.threshold.Load() {
		if err := f.spillLocked(); err != nil {
			return 0, err
		}
	}
	if d, ok := f.tier.(*plainDisk); ok && max(end, f.size) >= f.pool.dedicatedMin {
		f.pool.promote(d, f.size)
	}
	inRAM := f.inRAMLocked()
	if inRAM {
		f.pool.touch(f) // a write is a use, for the LRU order as much as a read
	}
	grow := f.tier.missing(off, end) * PageSize
	if grow == 0 {
		return 0, nil
	}
	if inRAM && f.pool.reserveRAM(f, grow) != nil {
		// Spilling keeps every page, so grow is what the disk needs too.
		if err := f.spillLocked(); err != nil {
			return 0, err
		}
		inRAM = false
	}
	if err := f.acct.Reserve(grow); err != nil {
		if inRAM {
			f.pool.releaseRAM(grow)
		}
		return 0, err
	}
	return grow, nil
}

// settleLocked brings the accounts in line with the tier after a call to
// it, for which reserveLocked took charged bytes (0 for a call that only
// frees): what the call did not allocate after all, and what it freed, go
// back to the accounter, and the pool learns of the change.
func (f *File) settleLocked(charged int64) {
	now := f.tier.allocated()
	added := now - f.allocated // negative if pages were freed
	f.allocated = now
	if unused := charged - added; unused != 0 {
		f.acct.Release(unused)
	}
	f.pool.settle(f.inRAMLocked(), charged, added)
}

// spillLocked moves a RAM file to disk. On failure the file stays in RAM,
// unchanged. Its allocation does not change: the disk tier holds the same
// pages.
func (f *File) spillLocked() error {
	ram, ok := f.tier.(*ramPages)
	if !ok {
		return nil
	}
	d, err := f.pool.newDiskTier(f.size)
	if err != nil {
		return err
	}
	if err := d.copyFrom(ram, f.size); err != nil {
		d.close()
		return err
	}
	ram.close()
	f.tier = d
	f.pool.spilled(f, f.allocated)
	return nil
}
