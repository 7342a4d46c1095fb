package spill

import (
	"fmt"
	"os"
	"sync"
)

// backedTier is implemented by a tier that keeps all of a file's bytes,
// in the clear, at their own offsets in one backing file of its own, so
// that whoever reads that file at offset off reads the file's byte at off.
// The plain disk tier does; the sealed tier must not (its backing file
// holds ciphertext in slots), nor a tier that shares a backing file
// between files.
type backedTier interface {
	tier
	backingFile() *os.File
}

var _ backedTier = (*plainDisk)(nil)

// HasBacking reports whether the file's bytes all live in a backing file
// of its own (see backedTier), the kind PinBacking can hand out: a reader
// of such a file could be served from that file's page cache.
func (f *File) HasBacking() bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	b, isBacked := f.tier.(backedTier)
	return !f.closed && isBacked && b.backingFile() != nil
}

// PinBacking returns the file's backing file, if its bytes all live in one
// of its own (see backedTier), and pins the file there: until unpin is
// called, its bytes stay in that backing file, whose length is kept equal
// to the file's size (a read of it never sees past the end, nor stops
// short of it), and the file stays dense: no hole below its size. A
// caller may then hand the backing file to someone who reads it directly,
// such as the kernel for FUSE passthrough; the file's own writes,
// truncates and punches keep going to the same file, so such a reader
// sees them at once. Being dense, the file gives whoever may write the
// backing file directly (a shared mapping of it) no page to allocate that
// the accounts have not paid for: a write past the end or a truncate that
// grows the file allocates the pages between, charged as any write's; a
// punch below the size writes zeros and frees nothing.
//
// ok is false for a file in RAM, in a tier that is not backed, closed,
// with a hole below its size, or whose backing file cannot be given the
// file's length (a file system's largest file is smaller than MaxSize);
// the caller then serves reads itself. unpin may be called more than once; the first call counts.
// The returned file stays the File's: the caller must not close it, and
// must not use it after unpin.
func (f *File) PinBacking() (backing *os.File, unpin func(), ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, nil, false
	}
	b, isBacked := f.tier.(backedTier)
	if !isBacked || b.backingFile() == nil {
		return nil, nil, false
	}
	if f.pins == 0 {
		if f.size > 0 && f.tier.missing(0, f.size) > 0 {
			return nil, nil, false
		}
		if err := matchLength(b.backingFile(), f.size); err != nil {
			return nil, nil, false
		}
	}
	f.pins++
	var once sync.Once
	return b.backingFile(), func() { once.Do(f.unpin) }, true
}

func (f *File) unpin() {
	f.mu.Lock()
	f.pins--
	f.mu.Unlock()
}

// matchLength makes backing exactly size bytes long. A tier may leave its
// backing file shorter than the size (a truncate that grows the file adds
// only a hole, and nothing needs it on disk), which is cheap to mend; a
// longer one holds pages preallocated past the end (fallocate with
// KEEP_SIZE, copied in from RAM), which cutting would free behind the
// accounts' back, so that file is not pinned.
func matchLength(backing *os.File, size int64) error {
	info, err := backing.Stat()
	if err != nil {
		return err
	}
	switch {
	case info.Size() > size:
		return fmt.Errorf("backing file is %d bytes, past the size %d", info.Size(), size)
	case info.Size() < size:
		return backing.Truncate(size)
	}
	return nil
}

// keepLengthLocked sets a pinned file's backing file to the new size
// after a truncate, which the tiers leave short of it when the file
// grows, or when it shrinks to a size past its last allocated page.
func (f *File) keepLengthLocked(size int64) error {
	if f.pins == 0 {
		return nil
	}
	return f.tier.(backedTier).backingFile().Truncate(size)
}

// fillGapLocked allocates [from, to) of a pinned file, charged, before a
// call that would leave it a hole below the size.
func (f *File) fillGapLocked(from, to int64) error {
	if f.pins == 0 || to <= from {
		return nil
	}
	charged, err := f.reserveLocked(from, to)
	if err != nil {
		return err
	}
	err = f.tier.allocate(from, to, true)
	f.settleLocked(charged)
	return err
}

// zeroLocked writes zeros over [off, end) of a pinned file, whose pages
// there are all allocated: a punch that keeps the file dense.
func (f *File) zeroLocked(off, end int64) error {
	zeros := make([]byte, min(end-off, 1<<20))
	for off < end {
		n, err := f.tier.writeAt(zeros[:min(end-off, int64(len(zeros)))], off)
		if err != nil {
			return err
		}
		off += int64(n)
	}
	return nil
}
