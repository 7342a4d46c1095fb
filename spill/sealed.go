package spill

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
)

// The sealed tier: with Config.Encrypt, a spilled file keeps each page as a
// slot of its own, sealed with AES-256-GCM under a key that only the pool's
// memory holds. See the package documentation for the layout and the rules.
const (
	nonceSize = 12
	tagSize   = 16
	// slotSize is the room a sealed page takes on disk: page pg is the
	// slotSize bytes at pg*slotSize, nonce || ciphertext || tag.
	slotSize = nonceSize + PageSize + tagSize
	// sealBatch is the most slots one read or write moves: about 258 KiB.
	sealBatch = 64
)

// sealer seals and opens the pages of one pool's spill files. It is safe
// for concurrent use: the AEAD holds only its key schedule, and the counters
// are atomic.
type sealer struct {
	aead cipher.AEAD
	// nonces counts the seals made under the key. A seal takes the next
	// value as its nonce, so no nonce is used twice: 2^64 seals of 4 KiB
	// are not within any process's reach.
	nonces atomic.Uint64
	// fileIDs counts the spill files made; each file's id goes into the
	// additional data of its slots, so a slot means nothing in another file.
	fileIDs atomic.Uint64
	bufs    sync.Pool // of *sealBuf
}

// sealBuf is one call's scratch space: a batch of slots, a page of
// plaintext for the partial pages at the ends of a call, and the additional
// data of the slot at hand. Kept in the sealer's sync.Pool so that the hot
// path allocates nothing.
type sealBuf struct {
	slots [sealBatch * slotSize]byte
	page  [PageSize]byte
	aad   [16]byte
}

// newSealer draws a fresh AES-256 key. The key exists only in the AEAD's
// key schedule, in this process's memory: when the process ends, every slot
// it sealed is noise.
func newSealer() (*sealer, error) {
	var key [32]byte
	defer clear(key[:])
	if _, err := rand.Read(key[:]); err != nil {
		return nil, fmt.Errorf("spill: encryption key: %w", err)
	}
	block, err := aes.NewCipher(key[:])
	if err != nil {
		return nil, fmt.Errorf("spill: encryption key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("spill: encryption key: %w", err)
	}
	s := &sealer{aead: aead}
	s.bufs.New = func() any { return new(sealBuf) }
	return s, nil
}

func (s *sealer) getBuf() *sealBuf  { return s.bufs.Get().(*sealBuf) }
func (s *sealer) putBuf(b *sealBuf) { s.bufs.Put(b) }

// reserve takes n nonces and returns the first; the others follow it.
func (s *sealer) reserve(n int64) uint64 {
	return s.nonces.Add(uint64(n)) - uint64(n)
}

// setAAD binds a slot to its file and page.
func (b *sealBuf) setAAD(id uint64, pg int64) {
	binary.BigEndian.PutUint64(b.aad[:8], id)
	binary.BigEndian.PutUint64(b.aad[8:], uint64(pg))
}

// seal writes page pg of file id, plain (PageSize bytes), into slot
// (slotSize bytes) under nonce n. The nonce is read from the slot it was
// written to, and the AAD from b, so that nothing escapes to the heap.
func (s *sealer) seal(b *sealBuf, slot, plain []byte, id uint64, pg int64, n uint64) {
	clear(slot[:nonceSize-8])
	binary.BigEndian.PutUint64(slot[nonceSize-8:nonceSize], n)
	b.setAAD(id, pg)
	s.aead.Seal(slot[nonceSize:nonceSize], slot[:nonceSize], plain, b.aad[:])
}

// open decrypts slot, which should hold page pg of file id, into dst
// (PageSize bytes). A slot that does not authenticate leaves dst zeroed and
// gives ErrCorrupt: never unauthenticated bytes.
func (s *sealer) open(b *sealBuf, dst, slot []byte, id uint64, pg int64) error {
	b.setAAD(id, pg)
	if _, err := s.aead.Open(dst[:0], slot[:nonceSize], slot[nonceSize:slotSize], b.aad[:]); err != nil {
		clear(dst)
		return fmt.Errorf("%w: page %d (offset %d)", ErrCorrupt, pg, pg*PageSize)
	}
	return nil
}

// sealedDisk is the disk tier that seals: page pg is an encrypted slot at
// pg*slotSize, and the tier answers for holes and zeros itself, never
// reading a slot it did not write.
type sealedDisk struct {
	diskPages
	seal  *sealer
	id    uint64  // this file's id in the slots' additional data
	fresh pageSet // pages allocated by fallocate, never written: no slot yet
}

// sealed reports whether page pg has a slot on disk: it is allocated and
// has been written. Holes and fresh pages read as zeros without the disk.
func (d *sealedDisk) sealed(pg int64) bool {
	return d.pages.has(pg) && (d.fresh.count == 0 || !d.fresh.has(pg))
}

// readSlots reads the slots of the len(b)/slotSize pages from first on.
// Those slots were all written, so a short read means the file was cut
// under us.
func (d *sealedDisk) readSlots(b []byte, first int64) error {
	n, err := d.st.ReadAt(b, first*slotSize)
	if n == len(b) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		pg := first + int64(n/slotSize)
		return fmt.Errorf("%w: page %d (offset %d): slot missing from the spill file", ErrCorrupt, pg, pg*PageSize)
	}
	return err
}

// load reads and opens sealed page pg into b.page, using slot (slotSize
// bytes of b.slots) as room for the ciphertext.
func (d *sealedDisk) load(b *sealBuf, slot []byte, pg int64) error {
	if err := d.readSlots(slot, pg); err != nil {
		return err
	}
	return d.seal.open(b, b.page[:], slot, d.id, pg)
}

// zeroInPage zeroes bytes [lo, hi) of page pg: it opens the slot, clears
// the bytes and seals the page again under a new nonce. Holes and fresh
// pages are zeros already.
func (d *sealedDisk) zeroInPage(pg, lo, hi int64) error {
	if lo >= hi || !d.sealed(pg) {
		return nil
	}
	s := d.seal
	b := s.getBuf()
	defer s.putBuf(b)
	slot := b.slots[:slotSize]
	if err := d.load(b, slot, pg); err != nil {
		return err
	}
	clear(b.page[lo:hi])
	s.seal(b, slot, b.page[:], d.id, pg, s.reserve(1))
	_, err := d.st.WriteAt(slot, pg*slotSize)
	return err
}

func (d *sealedDisk) readAt(p []byte, off int64) (int, error) {
	s := d.seal
	b := s.getBuf()
	defer s.putBuf(b)
	end := off + int64(len(p))
	last := (end - 1) / PageSize
	for pos := off; pos < end; {
		pg := pos / PageSize
		if !d.sealed(pg) {
			next := min(end, (pg+1)*PageSize)
			clear(p[pos-off : next-off])
			pos = next
			continue
		}
		// A run of sealed pages: one read for all their slots.
		n := int64(1)
		for n < sealBatch && pg+n <= last && d.sealed(pg+n) {
			n++
		}
		slots := b.slots[:n*slotSize]
		if err := d.readSlots(slots, pg); err != nil {
			return int(pos - off), err
		}
		for i := range n {
			q := pg + i
			slot := slots[i*slotSize : (i+1)*slotSize]
			lo, hi := max(pos, q*PageSize), min(end, (q+1)*PageSize)
			dst := p[lo-off : hi-off]
			var err error
			if hi-lo == PageSize {
				err = s.open(b, dst, slot, d.id, q) // straight into p
			} else {
				err = s.open(b, b.page[:], slot, d.id, q)
				copy(dst, b.page[lo-q*PageSize:])
			}
			if err != nil {
				return int(lo - off), err
			}
		}
		pos = min(end, (pg+n)*PageSize)
	}
	return len(p), nil
}

// writeAt seals the pages of [off, off+len(p)) a batch at a time. The pages
// at either end that p covers only in part are read, opened, merged with p
// and sealed again; a hole or a fresh page merges with zeros. Only pages
// whose slots reach the disk whole count as written.
func (d *sealedDisk) writeAt(p []byte, off int64) (int, error) {
	end := off + int64(len(p))
	s := d.seal
	b := s.getBuf()
	defer s.putBuf(b)
	first, last := pageSpan(off, end)
	var err error
	done := 0
	for pg := first; pg <= last && err == nil; {
		n := min(last-pg+1, sealBatch)
		slots := b.slots[:n*slotSize]
		nonce := s.reserve(n)
		built := int64(0)
		for ; built < n; built++ {
			q := pg + built
			slot := slots[built*slotSize : (built+1)*slotSize]
			lo, hi := max(off, q*PageSize), min(end, (q+1)*PageSize)
			plain := p[lo-off : hi-off]
			if hi-lo < PageSize {
				if d.sealed(q) {
					if err = d.load(b, slot, q); err != nil {
						break // write the pages before it, then stop
					}
				} else {
					clear(b.page[:])
				}
				copy(b.page[lo-q*PageSize:], plain)
				plain = b.page[:]
			}
			s.seal(b, slot, plain, d.id, q, nonce+uint64(built))
		}
		w, werr := d.st.WriteAt(slots[:built*slotSize], pg*slotSize)
		if whole := int64(w / slotSize); whole > 0 {
			d.pages.setRange(pg, pg+whole-1)
			if d.fresh.count > 0 {
				d.fresh.clearRange(pg, pg+whole-1)
			}
			done = int(min(end, (pg+whole)*PageSize) - off)
		}
		if werr != nil {
			err = werr
		}
		pg += n
	}
	return done, err
}

// truncate zeroes the tail of the new last page if the file shrinks to the
// middle of a page, then cuts the slots past it.
func (d *sealedDisk) truncate(size int64) error {
	keep := (size + PageSize - 1) / PageSize
	if in := size % PageSize; in != 0 {
		if err := d.zeroInPage(size/PageSize, in, PageSize); err != nil {
			return err
		}
	}
	// No slot lies past the pages ever allocated: the disk file need not
	// be longer (and ext4 refuses a length past 16 TiB).
	if err := d.st.truncate(min(keep, d.pages.limit) * slotSize); err != nil {
		return err
	}
	d.pages.clearFrom(keep)
	if d.fresh.count > 0 {
		d.fresh.clearFrom(keep)
	}
	return nil
}

// punch frees the slots of the pages [off, end) covers whole, then zeroes
// the parts of the pages at either end it covers in part. Freeing comes
// first so that a failure leaves the page set true to the disk.
func (d *sealedDisk) punch(off, end int64) error {
	if first, last := pagesIn(off, end); first <= last {
		if err := d.st.punch(first*slotSize, (last-first+1)*slotSize); err != nil {
			return err
		}
		d.pages.clearRange(first, last)
		if d.fresh.count > 0 {
			d.fresh.clearRange(first, last)
		}
	}
	head := off / PageSize
	if off%PageSize != 0 {
		if err := d.zeroInPage(head, off%PageSize, min(end-head*PageSize, PageSize)); err != nil {
			return err
		}
	}
	if tail := end / PageSize; end%PageSize != 0 && (off%PageSize == 0 || tail != head) {
		return d.zeroInPage(tail, max(off-tail*PageSize, 0), end%PageSize)
	}
	return nil
}

// allocate reserves the slots of [off, end) on disk and records the pages
// it adds as fresh: allocated, reading as zeros, with no slot yet. Sealing
// zeros instead would make a large fallocate cost a full write. The disk
// file's size never matters here, so keepSize has nothing to do.
func (d *sealedDisk) allocate(off, end int64, _ bool) error {
	first, last := pageSpan(off, end)
	if err := d.st.allocate(first*slotSize, (last-first+1)*slotSize, true); err != nil {
		return err
	}
	for pg := first; pg <= last; pg++ {
		if !d.pages.has(pg) {
			d.pages.setRange(pg, pg)
			d.fresh.setRange(pg, pg)
		}
	}
	return nil
}

// copyFrom seals a RAM file's pages into d, a run of slots per write. The
// disk file's size is left to follow the slots: the logical size is the
// File's.
func (d *sealedDisk) copyFrom(r *ramPages, _ int64) error {
	s := d.seal
	b := s.getBuf()
	defer s.putBuf(b)
	for pg := int64(0); pg < int64(len(r.pages)); {
		if r.pages[pg] == nil {
			pg++
			continue
		}
		n := int64(1)
		for n < sealBatch && pg+n < int64(len(r.pages)) && r.pages[pg+n] != nil {
			n++
		}
		slots := b.slots[:n*slotSize]
		nonce := s.reserve(n)
		for i := range n {
			s.seal(b, slots[i*slotSize:(i+1)*slotSize], r.pages[pg+i][:], d.id, pg+i, nonce+uint64(i))
		}
		if _, err := d.st.WriteAt(slots, pg*slotSize); err != nil {
			return err
		}
		d.pages.setRange(pg, pg+n-1)
		pg += n
	}
	return nil
}
