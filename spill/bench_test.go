package spill

import "testing"

const benchSpan = 16 << 20 // bytes of file the benchmarks cycle through

// benchFile returns a file of benchSpan bytes, every page allocated, in RAM
// or on disk, plain or sealed.
func benchFile(b *testing.B, onDisk, encrypt bool) *File {
	b.Helper()
	threshold := int64(2 * benchSpan)
	if onDisk {
		threshold = 0
	}
	newPool := newTestPool
	if encrypt {
		newPool = newSealedPool
	}
	p := newPool(b, threshold, 2*benchSpan)
	f := p.NewFile(nopAcct{})
	b.Cleanup(func() { f.Close() })
	buf := pat(1<<20, 1)
	for off := int64(0); off < benchSpan; off += int64(len(buf)) {
		if _, err := f.WriteAt(buf, off); err != nil {
			b.Fatal(err)
		}
	}
	if f.OnDisk() != onDisk {
		b.Fatalf("OnDisk = %v", f.OnDisk())
	}
	return f
}

var benchTiers = []struct {
	name            string
	onDisk, encrypt bool
}{{"ram", false, false}, {"disk", true, false}, {"sealed", true, true}}

// benchRW overwrites or reads n bytes at a time, walking through the file.
func benchRW(b *testing.B, n int, write bool) {
	for _, tier := range benchTiers {
		b.Run(tier.name, func(b *testing.B) {
			f := benchFile(b, tier.onDisk, tier.encrypt)
			buf := pat(n, 2)
			b.SetBytes(int64(n))
			b.ReportAllocs()
			var off int64
			for b.Loop() {
				var err error
				if write {
					_, err = f.WriteAt(buf, off)
				} else {
					_, err = f.ReadAt(buf, off)
				}
				if err != nil {
					b.Fatal(err)
				}
				if off += int64(n); off+int64(n) > benchSpan {
					off = 0
				}
			}
		})
	}
}

func BenchmarkWriteAt4K(b *testing.B) { benchRW(b, PageSize, true) }
func BenchmarkWriteAt1M(b *testing.B) { benchRW(b, 1<<20, true) }
func BenchmarkReadAt4K(b *testing.B)  { benchRW(b, PageSize, false) }
func BenchmarkReadAt1M(b *testing.B)  { benchRW(b, 1<<20, false) }

// BenchmarkWriteAt4KNewPages appends to RAM files, allocating a page per
// write: the pages come from the pool's free list.
func BenchmarkWriteAt4KNewPages(b *testing.B) {
	p := newTestPool(b, benchSpan, benchSpan)
	buf := pat(PageSize, 3)
	f := p.NewFile(nopAcct{})
	b.SetBytes(PageSize)
	b.ReportAllocs()
	var off int64
	for b.Loop() {
		if off == benchSpan {
			f.Close()
			f, off = p.NewFile(nopAcct{}), 0
		}
		if _, err := f.WriteAt(buf, off); err != nil {
			b.Fatal(err)
		}
		off += PageSize
	}
	f.Close()
}

// BenchmarkSpill moves a 16 MiB RAM file to disk.
func BenchmarkSpill(b *testing.B) {
	p := newTestPool(b, 2*benchSpan, 2*benchSpan)
	buf := pat(1<<20, 4)
	b.SetBytes(benchSpan)
	b.ReportAllocs()
	for range b.N {
		b.StopTimer()
		f := p.NewFile(nopAcct{})
		for off := int64(0); off < benchSpan; off += int64(len(buf)) {
			if _, err := f.WriteAt(buf, off); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		f.mu.Lock()
		err := f.spillLocked()
		f.mu.Unlock()
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		f.Close()
		b.StartTimer()
	}
}

// BenchmarkSpillSmall moves a 4 KiB RAM file to disk: what a cold small
// file costs when the RAM budget pushes it out.
func BenchmarkSpillSmall(b *testing.B) {
	p := newTestPool(b, benchSpan, benchSpan)
	buf := pat(PageSize, 5)
	b.ReportAllocs()
	for range b.N {
		b.StopTimer()
		f := p.NewFile(nopAcct{})
		if _, err := f.WriteAt(buf, 0); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		f.mu.Lock()
		err := f.spillLocked()
		f.mu.Unlock()
		if err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
}

// BenchmarkCreateWrite4K makes a file and writes 4 KiB into it with every
// byte going to disk (threshold 0), then closes it: a create + write +
// unlink into the spilled tier, without FUSE.
func BenchmarkCreateWrite4K(b *testing.B) {
	for _, encrypt := range []bool{false, true} {
		name := "plain"
		newPool := newTestPool
		if encrypt {
			name, newPool = "sealed", newSealedPool
		}
		b.Run(name, func(b *testing.B) {
			p := newPool(b, 0, benchSpan)
			buf := pat(PageSize, 6)
			b.ReportAllocs()
			for b.Loop() {
				f := p.NewFile(nopAcct{})
				if _, err := f.WriteAt(buf, 0); err != nil {
					b.Fatal(err)
				}
				f.Close()
			}
		})
	}
}
