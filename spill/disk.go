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

// diskFile is a spilled file: an unnamed file in the pool's private
// directory and the set of pages allocated in it. All methods are called
// with the owning File's lock held (readAt with the read lock).
//
// A plain diskFile holds page pg at offset pg*PageSize, in the clear, and
// leans on the file system for holes and zeros. A sealed one (seal != nil)
// holds it as an encrypted slot at pg*slotSize and answers for holes and
// zeros itself: see sealed.go. Each method branches once, at the top.
type diskFile struct {
	f     *os.File
	pages pageSet

	seal  *sealer // nil: plain
	id    uint64  // sealed: this file's id in the slots' additional data
	fresh pageSet // sealed: pages allocated by fallocate, never written
}

func (d *diskFile) allocated() int64 { return d.pages.count * PageSize }

func (d *diskFile) close() error { return d.f.Close() }

func (d *diskFile) readAt(p []byte, off int64) (int, error) {
	if d.seal != nil {
		return d.sealedReadAt(p, off)
	}
	n, err := d.f.ReadAt(p, off)
	if n < len(p) && (err == nil || errors.Is(err, io.EOF)) {
		// The file is shorter on disk than its logical size only if the
		// tail is a hole that ftruncate has not been asked to cover;
		// that cannot happen, but zeros are the right answer if it does.
		clear(p[n:])
		n, err = len(p), nil
	}
	return n, err
}

func pageSpan(off, end int64) (first, last int64) {
	return off / PageSize, (end - 1) / PageSize
}

// charge reserves the pages of [off, end) not yet allocated.
func (d *diskFile) charge(off, end int64, acct Accounter) (int64, error) {
	first, last := pageSpan(off, end)
	grow := d.pages.countMissing(first, last) * PageSize
	if err := acct.Reserve(grow); err != nil {
		return 0, err
	}
	return grow, nil
}

// writeAt charges acct for the new pages, then writes. If the disk takes
// fewer bytes than asked, only the pages it took stay charged.
func (d *diskFile) writeAt(p []byte, off int64, acct Accounter, pool *Pool) (int, error) {
	if d.seal != nil {
		return d.sealedWriteAt(p, off, acct, pool)
	}
	end := off + int64(len(p))
	charged, err := d.charge(off, end, acct)
	if err != nil {
		return 0, err
	}
	n, err := d.f.WriteAt(p, off)
	var added int64
	if n > 0 {
		first, last := pageSpan(off, off+int64(n))
		added = d.pages.setRange(first, last) * PageSize
	}
	acct.Release(charged - added)
	pool.diskBytes.Add(added)
	return n, err
}

// truncate changes the size from from to size.
func (d *diskFile) truncate(from, size int64, acct Accounter, pool *Pool) error {
	if d.seal != nil {
		return d.sealedTruncate(from, size, acct, pool)
	}
	if err := d.f.Truncate(size); err != nil {
		return err
	}
	freed := d.pages.clearFrom((size+PageSize-1)/PageSize) * PageSize
	acct.Release(freed)
	pool.diskBytes.Add(-freed)
	return nil
}

func (d *diskFile) punch(off, end int64, acct Accounter, pool *Pool) error {
	if d.seal != nil {
		return d.sealedPunch(off, end, acct, pool)
	}
	mode := uint32(fallocPunchHole | fallocKeepSize)
	if err := fallocate(d.f, mode, off, end-off); err != nil {
		return err
	}
	first := (off + PageSize - 1) / PageSize
	last := end/PageSize - 1
	if first > last {
		return nil
	}
	freed := d.pages.clearRange(first, last) * PageSize
	acct.Release(freed)
	pool.diskBytes.Add(-freed)
	return nil
}

func (d *diskFile) allocate(off, end int64, keepSize bool, acct Accounter, pool *Pool) error {
	if d.seal != nil {
		return d.sealedAllocate(off, end, acct, pool)
	}
	charged, err := d.charge(off, end, acct)
	if err != nil {
		return err
	}
	var mode uint32
	if keepSize {
		mode = fallocKeepSize
	}
	if err := fallocate(d.f, mode, off, end-off); err != nil {
		acct.Release(charged)
		return err
	}
	first, last := pageSpan(off, end)
	added := d.pages.setRange(first, last) * PageSize
	acct.Release(charged - added)
	pool.diskBytes.Add(added)
	return nil
}

// copyFrom writes a RAM file's pages into d, gathering runs of pages into
// large writes, and sets d's size.
func (d *diskFile) copyFrom(r *ramPages, size int64) error {
	if d.seal != nil {
		return d.sealedCopyFrom(r)
	}
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
		_, err := d.f.WriteAt(buf, start*PageSize)
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
	return d.f.Truncate(max(size, int64(len(r.pages))*PageSize))
}
