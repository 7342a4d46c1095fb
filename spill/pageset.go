package spill

import "math/bits"

// pageSet records which pages of a spilled file are allocated, 64 pages to a
// word, words kept only where some page is set: a sparse file costs nothing
// for its holes, whatever its size.
type pageSet struct {
	words map[int64]uint64
	count int64
	limit int64 // no page at or past limit has ever been set: bounds scans
}

func (s *pageSet) has(pg int64) bool {
	return s.words[pg/64]&(1<<(pg%64)) != 0
}

// countMissing counts the unset pages in [first, last]. A range longer
// than the words that exist is counted by visiting those words: what a
// fallocate of a petabyte over a sparse file costs to count (before it is
// refused) is what the file holds, not the range.
func (s *pageSet) countMissing(first, last int64) int64 {
	if last-first < 64*int64(len(s.words)) {
		var n int64
		for pg := first; pg <= last; pg++ {
			if !s.has(pg) {
				n++
			}
		}
		return n
	}
	set := int64(0)
	for w, word := range s.words {
		if w >= first/64 && w <= last/64 {
			set += int64(bits.OnesCount64(word & wordMask(w, first, last)))
		}
	}
	return last - first + 1 - set
}

// wordMask is the bits of word w that stand for pages of [first, last].
func wordMask(w, first, last int64) uint64 {
	mask := ^uint64(0)
	if lo := w * 64; lo < first {
		mask &^= uint64(1)<<(first-lo) - 1
	}
	if lo, hi := w*64, w*64+63; hi > last {
		mask &= uint64(1)<<(last-lo+1) - 1
	}
	return mask
}

// setRange sets pages [first, last] and returns how many were newly set.
func (s *pageSet) setRange(first, last int64) int64 {
	if s.words == nil {
		s.words = make(map[int64]uint64)
	}
	var added int64
	for pg := first; pg <= last; pg++ {
		w, bit := pg/64, uint64(1)<<(pg%64)
		if s.words[w]&bit == 0 {
			s.words[w] |= bit
			added++
		}
	}
	s.count += added
	s.limit = max(s.limit, last+1)
	return added
}

// clearRange clears pages [first, last] and returns how many were set. It
// visits the words of the range or the words that exist, whichever are
// fewer: punching a huge range of a sparse file is cheap.
func (s *pageSet) clearRange(first, last int64) int64 {
	var removed int64
	clearIn := func(w int64, word uint64) {
		mask := wordMask(w, first, last)
		removed += int64(bits.OnesCount64(word & mask))
		if word &^= mask; word == 0 {
			delete(s.words, w)
		} else {
			s.words[w] = word
		}
	}
	if last/64-first/64 < int64(len(s.words)) {
		for w := first / 64; w <= last/64; w++ {
			if word, ok := s.words[w]; ok {
				clearIn(w, word)
			}
		}
	} else {
		for w, word := range s.words {
			if w >= first/64 && w <= last/64 {
				clearIn(w, word)
			}
		}
	}
	s.count -= removed
	return removed
}

// clearFrom clears every page >= first and returns how many were set. It
// visits only the words that exist, so truncating a huge sparse file is cheap.
func (s *pageSet) clearFrom(first int64) int64 {
	var removed int64
	for w, word := range s.words {
		if (w+1)*64 <= first {
			continue
		}
		keep := uint64(0)
		if w*64 < first {
			keep = (uint64(1) << (first - w*64)) - 1
		}
		removed += int64(bits.OnesCount64(word &^ keep))
		if word&keep == 0 {
			delete(s.words, w)
		} else {
			s.words[w] = word & keep
		}
	}
	s.count -= removed
	return removed
}

// nextSet returns the first set page >= pg, or false if there is none. It
// visits only the words that exist, so seeking past a huge hole is cheap.
func (s *pageSet) nextSet(pg int64) (int64, bool) {
	best, found := int64(0), false
	for w, word := range s.words {
		if w < pg/64 {
			continue
		}
		if w == pg/64 {
			word &^= uint64(1)<<(pg%64) - 1 // ignore the pages before pg
		}
		if word == 0 {
			continue
		}
		if at := w*64 + int64(bits.TrailingZeros64(word)); !found || at < best {
			best, found = at, true
		}
	}
	return best, found
}

// nextClear returns the first unset page >= pg. It steps a word at a time,
// and only through words that are full.
func (s *pageSet) nextClear(pg int64) int64 {
	for {
		w := pg / 64
		word := s.words[w] | (uint64(1)<<(pg%64) - 1) // pages before pg count as set
		if word != ^uint64(0) {
			return w*64 + int64(bits.TrailingZeros64(^word))
		}
		pg = (w + 1) * 64
	}
}
