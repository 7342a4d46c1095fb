package spill

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"
)

func newSealedPool(t testing.TB, threshold, budget int64) *Pool {
	t.Helper()
	p, err := NewPool(Config{Dir: t.TempDir(), Threshold: threshold, RAMBudget: budget, Encrypt: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	if p.seal == nil {
		t.Fatal("the pool does not seal")
	}
	return p
}

// sealedOf is the sealed disk tier of f. The caller holds f.mu.
func sealedOf(t testing.TB, f *File) *sealedDisk {
	t.Helper()
	d, ok := f.tier.(*sealedDisk)
	if !ok {
		t.Fatalf("file not in a sealed tier: %T", f.tier)
	}
	return d
}

// rawDisk returns the bytes of f's spill file, read through /proc/self/fd
// as anyone able to read the disk would see them.
func rawDisk(t testing.TB, f *File) []byte {
	t.Helper()
	f.mu.RLock()
	defer f.mu.RUnlock()
	b, err := os.ReadFile("/proc/self/fd/" + strconv.Itoa(int(diskOf(t, f).osFile().Fd())))
	if err != nil {
		t.Skipf("reading the spill file through /proc: %v", err)
	}
	return b
}

// diskSize is the size of f's spill file itself.
func diskSize(t testing.TB, f *File) int64 {
	t.Helper()
	f.mu.RLock()
	defer f.mu.RUnlock()
	st, err := diskOf(t, f).osFile().Stat()
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// rawWrite overwrites bytes of f's spill file behind its back.
func rawWrite(t testing.TB, f *File, b []byte, off int64) {
	t.Helper()
	f.mu.RLock()
	defer f.mu.RUnlock()
	if _, err := diskOf(t, f).st.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func rawRead(t testing.TB, f *File, n int, off int64) []byte {
	t.Helper()
	f.mu.RLock()
	defer f.mu.RUnlock()
	b := make([]byte, n)
	if _, err := io.ReadFull(io.NewSectionReader(diskOf(t, f).st, off, int64(n)), b); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSealedModel runs the reference model over files large enough that
// reads, writes and spills move more slots than one batch holds.
func TestSealedModel(t *testing.T) {
	cfgs := map[string]modelConfig{
		"all on disk": {
			threshold: 0, budget: 1 << 20, limits: []int64{-1, 200 * PageSize},
			maxOff: 1 << 20, maxLen: 300 * PageSize, encrypt: true,
		},
		"spill big files": {
			threshold: 600 << 10, budget: 1 << 20, limits: []int64{-1, -1, -1},
			maxOff: 1 << 20, maxLen: 150 * PageSize, encrypt: true,
		},
	}
	steps := 60
	if testing.Short() {
		steps = 20
	}
	for name, cfg := range cfgs {
		for seed := range uint64(3) {
			t.Run(fmt.Sprintf("%s/seed%d", name, seed), func(t *testing.T) {
				r := rand.New(rand.NewPCG(seed, 0x5ea1))
				ops := make([]op, steps)
				for i := range ops {
					ops[i] = randOp(r, cfg, len(cfg.limits))
				}
				runModel(t, t.TempDir(), cfg, ops)
			})
		}
	}
}

// marker is plaintext that must never reach the disk in the clear.
func marker(n int) []byte {
	const m = "SPOOLFS-PLAINTEXT-MARKER-0123456789/"
	b := make([]byte, n)
	for i := range b {
		b[i] = m[i%len(m)]
	}
	return b
}

// needle is a piece of marker shorter than any run the test writes.
var needle = []byte("PLAINTEXT-MARKER")

// TestSealedNoPlaintextOnDisk writes a pattern by every path that puts
// bytes on disk (the spill itself, whole and partial pages, the
// read-modify-write of truncate and punch) and looks for it in the raw
// spill file. The same steps on a plain pool must leave it there, or the
// test proves nothing.
func TestSealedNoPlaintextOnDisk(t *testing.T) {
	const P = PageSize
	run := func(t *testing.T, p *Pool) *File {
		f := p.NewFile(newAcct())
		t.Cleanup(func() { f.Close() })
		if _, err := f.WriteAt(marker(70*P+123), 5); err != nil { // spilled from RAM: > one batch
			t.Fatal(err)
		}
		forceSpill(t, f)
		steps := []func() error{
			func() error { _, err := f.WriteAt(marker(130*P), 100*P); return err },      // whole pages, two batches
			func() error { _, err := f.WriteAt(marker(P+500), 300*P+1000); return err }, // partial at both ends
			func() error { _, err := f.WriteAt(marker(40), 400*P+7); return err },       // inside a hole page
			func() error { return f.Allocate(410*P, 4*P, false) },
			func() error { _, err := f.WriteAt(marker(300), 411*P+50); return err }, // into a fresh page
			func() error { return f.PunchHole(3*P+17, 2*P) },                        // partial ends and a whole page
			func() error { return f.PunchHole(60*P+9, 100) },                        // inside one page
			func() error { return f.Truncate(411*P + 200) },                         // cuts a page in two
		}
		for i, step := range steps {
			if err := step(); err != nil {
				t.Fatalf("step %d: %v", i, err)
			}
		}
		return f
	}
	t.Run("plain", func(t *testing.T) {
		f := run(t, newTestPool(t, 1<<20, 1<<20))
		if !bytes.Contains(rawDisk(t, f), needle) {
			t.Fatal("the plain spill file does not hold the pattern: the test looks in the wrong place")
		}
	})
	t.Run("sealed", func(t *testing.T) {
		f := run(t, newSealedPool(t, 1<<20, 1<<20))
		raw := rawDisk(t, f)
		if i := bytes.Index(raw, needle); i >= 0 {
			t.Fatalf("plaintext at byte %d of the spill file", i)
		}
		// Not even 8 bytes of the pattern, at any alignment.
		m := marker(64)
		for i := 0; i+8 <= 36+8; i++ {
			if j := bytes.Index(raw, m[i:i+8]); j >= 0 {
				t.Fatalf("8 bytes of plaintext at byte %d of the spill file", j)
			}
		}
		// No slot is left past the last page kept, once the reclaimer
		// has punched the extents the truncate let go of.
		f.pool.reclaim.drain()
		raw = rawDisk(t, f)
		if want := (411*P + 200 + P - 1) / P * slotSize; len(raw) > want && !bytes.Equal(raw[want:], make([]byte, len(raw)-want)) {
			t.Errorf("bytes past the last slot kept (%d) in the spill file", want)
		}
	})
}

// sealedFile returns a spilled file of a sealed pool holding pages 0..n-1
// of data, and the data.
func sealedFile(t *testing.T, p *Pool, n int, seed byte) (*File, []byte) {
	t.Helper()
	f := p.NewFile(newAcct())
	t.Cleanup(func() { f.Close() })
	data := pat(n*PageSize, seed)
	if _, err := f.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	forceSpill(t, f)
	return f, data
}

func flipByte(t *testing.T, f *File, off int64) {
	t.Helper()
	b := rawRead(t, f, 1, off)
	b[0] ^= 0x40
	rawWrite(t, f, b, off)
}

// TestSealedTamper flips one byte of a slot, in each of its parts, and
// checks that every operation that needs the page's bytes fails with
// ErrCorrupt and that the other pages are untouched.
func TestSealedTamper(t *testing.T) {
	const P = PageSize
	where := map[string]int64{
		"nonce":      3,
		"ciphertext": nonceSize + 1000,
		"tag":        slotSize - 2,
	}
	for part, at := range where {
		t.Run(part, func(t *testing.T) {
			p := newSealedPool(t, 0, 1<<20)
			f, data := sealedFile(t, p, 4, 1)
			flipByte(t, f, 1*slotSize+at)

			buf := make([]byte, 4*P)
			for i := range buf {
				buf[i] = 0xee
			}
			n, err := f.ReadAt(buf, 0)
			if !errors.Is(err, ErrCorrupt) || n != P {
				t.Fatalf("ReadAt over the page = %d, %v; want %d, ErrCorrupt", n, err, P)
			}
			if !bytes.Equal(buf[:P], data[:P]) {
				t.Error("the page before the bad one differs")
			}
			if !bytes.Equal(buf[P:2*P], make([]byte, P)) {
				t.Error("the bad page's bytes reached the caller")
			}
			if _, err := f.ReadAt(buf[:10], P+100); !errors.Is(err, ErrCorrupt) {
				t.Errorf("ReadAt inside the page: %v", err)
			}
			if n, err := f.ReadAt(buf[:2*P], 2*P); n != 2*P || err != nil || !bytes.Equal(buf[:2*P], data[2*P:]) {
				t.Errorf("ReadAt past the bad page = %d, %v", n, err)
			}
			// Operations that must merge with the page's bytes.
			if n, err := f.WriteAt([]byte("x"), P+5); n != 0 || !errors.Is(err, ErrCorrupt) {
				t.Errorf("partial WriteAt = %d, %v", n, err)
			}
			// The page before is written (with the bytes it holds), the
			// bad one is not: a short write.
			if n, err := f.WriteAt(data[:P+5], 0); n != P || !errors.Is(err, ErrCorrupt) {
				t.Errorf("WriteAt ending in the page = %d, %v; want %d, ErrCorrupt", n, err, P)
			}
			if err := f.PunchHole(P+10, 10); !errors.Is(err, ErrCorrupt) {
				t.Errorf("PunchHole inside the page: %v", err)
			}
			if err := f.Truncate(P + 10); !errors.Is(err, ErrCorrupt) {
				t.Errorf("Truncate into the page: %v", err)
			}
			if f.Size() != 4*P || f.Allocated() != 4*P {
				t.Errorf("after failures: Size %d, Allocated %d", f.Size(), f.Allocated())
			}
			// A write of the whole page replaces it without reading it.
			fix := pat(P, 9)
			if n, err := f.WriteAt(fix, P); n != P || err != nil {
				t.Fatalf("whole-page WriteAt = %d, %v", n, err)
			}
			copy(data[P:], fix)
			checkContents(t, f, data)
		})
	}
}

// TestSealedSlotsBound moves slots between pages and between files: the
// page index and the file id in the additional data must reject them.
func TestSealedSlotsBound(t *testing.T) {
	const P = PageSize
	p := newSealedPool(t, 0, 1<<20)
	f, _ := sealedFile(t, p, 3, 1)
	g, gdata := sealedFile(t, p, 3, 2)

	// Page 0 of f into page 2 of f.
	rawWrite(t, f, rawRead(t, f, slotSize, 0), 2*slotSize)
	if _, err := f.ReadAt(make([]byte, P), 2*P); !errors.Is(err, ErrCorrupt) {
		t.Errorf("a slot moved to another page: %v", err)
	}
	// Page 1 of g into page 1 of f: same page, other file.
	rawWrite(t, f, rawRead(t, g, slotSize, slotSize), slotSize)
	if _, err := f.ReadAt(make([]byte, P), P); !errors.Is(err, ErrCorrupt) {
		t.Errorf("a slot moved to another file: %v", err)
	}
	checkContents(t, g, gdata)

	// A slot cut from the end of the file.
	f.mu.RLock()
	err := diskOf(t, f).st.truncate(slotSize / 2)
	f.mu.RUnlock()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.ReadAt(make([]byte, P), 0); !errors.Is(err, ErrCorrupt) {
		t.Errorf("a slot cut short: %v", err)
	}
	if _, err := f.ReadAt(make([]byte, P), P); !errors.Is(err, ErrCorrupt) {
		t.Errorf("a slot cut off: %v", err)
	}
}

// TestSealedNonces rewrites one page many times, with the same bytes, and
// checks that no nonce comes back and that the slot changes every time.
func TestSealedNonces(t *testing.T) {
	const P = PageSize
	p := newSealedPool(t, 0, 1<<20)
	f, data := sealedFile(t, p, 8, 3)
	g, _ := sealedFile(t, p, 8, 3) // same bytes, other file
	seen := map[string]string{}
	note := func(who string, slot []byte) {
		t.Helper()
		nonce := string(slot[:nonceSize])
		if prev, ok := seen[nonce]; ok {
			t.Fatalf("nonce %x of %s used before by %s", nonce, who, prev)
		}
		seen[nonce] = who
	}
	for pg := range int64(8) {
		note(fmt.Sprint("f page ", pg), rawRead(t, f, slotSize, pg*slotSize))
		note(fmt.Sprint("g page ", pg), rawRead(t, g, slotSize, pg*slotSize))
	}
	if bytes.Equal(rawRead(t, f, slotSize, 0)[nonceSize:], rawRead(t, g, slotSize, 0)[nonceSize:]) {
		t.Error("two files with the same bytes have the same ciphertext")
	}
	prev := rawRead(t, f, slotSize, 2*slotSize)
	for i := range 50 {
		var err error
		switch i % 4 {
		case 0:
			_, err = f.WriteAt(data[2*P:3*P], 2*P) // whole page, same bytes
		case 1:
			_, err = f.WriteAt(data[2*P+10:2*P+20], 2*P+10) // partial, same bytes
		case 2:
			err = f.PunchHole(2*P+4000, 50) // inside the page: sealed again even if already zeros
			clear(data[2*P+4000 : 2*P+4050])
		case 3:
			_, err = f.WriteAt(data[P:4*P], P) // a run of three pages
		}
		if err != nil {
			t.Fatal(err)
		}
		slot := rawRead(t, f, slotSize, 2*slotSize)
		if bytes.Equal(slot, prev) {
			t.Fatalf("step %d: the slot did not change", i)
		}
		note(fmt.Sprint("f page 2 step ", i), slot)
		prev = slot
	}
	checkContents(t, f, data)
}

// TestSealedFreshPages: pages that fallocate adds read as zeros, take no
// seal (and so no time to speak of, however many), and count as data.
func TestSealedFreshPages(t *testing.T) {
	const P = PageSize
	p := newSealedPool(t, 0, 1<<20)
	acct := newAcct()
	f := p.NewFile(acct)
	defer f.Close()
	if _, err := f.WriteAt([]byte("head"), 0); err != nil {
		t.Fatal(err)
	}
	const pages = 1 << 14 // 64 MiB of fresh pages
	if err := f.Allocate(0, pages*P, true); err != nil {
		t.Fatal(err)
	}
	if f.Allocated() != pages*P || acct.Balance() != pages*P {
		t.Fatalf("Allocated %d, charged %d", f.Allocated(), acct.Balance())
	}
	if raw := rawDisk(t, f); len(raw) < slotSize || !bytes.Equal(raw[slotSize:], make([]byte, len(raw)-slotSize)) {
		t.Errorf("a fallocate sealed slots: the spill file holds %d bytes, not zeros past the first slot", len(raw))
	}
	// Growing keeps the preallocated pages (as tmpfs does); shrinking cuts
	// the fresh pages past the new end.
	if err := f.Truncate(4 * P); err != nil {
		t.Fatal(err)
	}
	if f.Allocated() != pages*P {
		t.Fatalf("growing freed pages: Allocated %d, want %d", f.Allocated(), pages*P)
	}
	if err := f.Truncate(3 * P); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("mid"), P+100); err != nil { // merges with a fresh page
		t.Fatal(err)
	}
	if err := f.PunchHole(2*P+1, 10); err != nil { // inside a fresh page: nothing to do
		t.Fatal(err)
	}
	checkContents(t, f, image(3*P, 0, []byte("head"), P+100, []byte("mid")))
	if got, err := f.SeekHole(0); got != 3*P || err != nil {
		t.Errorf("SeekHole = %d, %v; fresh pages are data", got, err)
	}
	f.mu.RLock()
	fresh := sealedOf(t, f).fresh.count
	f.mu.RUnlock()
	if fresh != 1 || f.Allocated() != 3*P || acct.Balance() != 3*P {
		t.Errorf("fresh pages %d, Allocated %d, charged %d; want 1, %d, %d", fresh, f.Allocated(), acct.Balance(), 3*P, 3*P)
	}
	acct.check(t)
}

// TestSealedLayout checks where slots live: page pg at pg*slotSize of a
// fresh shared file (the extents of the first file placed there line up
// with its pages), the slots past the last page kept punched out after a
// truncate, punched slots gone from the disk.
func TestSealedLayout(t *testing.T) {
	const P = PageSize
	p := newSealedPool(t, 0, 1<<20)
	f := p.NewFile(newAcct())
	defer f.Close()
	if _, err := f.WriteAt(pat(10*P, 1), 0); err != nil {
		t.Fatal(err)
	}
	if got := diskSize(t, f); got != 10*slotSize {
		t.Errorf("10 pages: spill file size %d, want %d", got, 10*slotSize)
	}
	if _, err := f.WriteAt([]byte{1}, 20*P+5); err != nil {
		t.Fatal(err)
	}
	if got := diskSize(t, f); got != 21*slotSize {
		t.Errorf("21 pages: spill file size %d, want %d", got, 21*slotSize)
	}
	if err := f.PunchHole(2*P, 3*P); err != nil {
		t.Fatal(err)
	}
	if got := rawRead(t, f, 3*slotSize, 2*slotSize); !bytes.Equal(got, make([]byte, 3*slotSize)) {
		t.Error("punched slots still hold bytes")
	}
	if got := rawRead(t, f, slotSize, 5*slotSize); bytes.Equal(got, make([]byte, slotSize)) {
		t.Error("the slot after the punch is gone")
	}
	if err := f.Truncate(7*P + 1); err != nil {
		t.Fatal(err)
	}
	p.reclaim.drain()
	if got := rawShared(t, f, 13*slotSize, 8*slotSize); !bytes.Equal(got, make([]byte, 13*slotSize)) {
		t.Errorf("after Truncate(7P+1): the slots past page 7 still hold bytes")
	}
	want := image(7*P+1, 0, pat(2*P, 1), 5*P, pat(10*P, 1)[5*P:7*P+1])
	checkContents(t, f, want)
	if err := f.Truncate(9 * P); err != nil { // grows: the cut page's tail reads as zeros
		t.Fatal(err)
	}
	checkContents(t, f, image(9*P, 0, want))
}

// TestSealedHugeSparseFile: slots of pages terabytes apart.
func TestSealedHugeSparseFile(t *testing.T) {
	const P = PageSize
	p := newSealedPool(t, 0, 0)
	f := p.NewFile(newAcct())
	defer f.Close()
	const a, b = int64(1) << 36, int64(1) << 42
	if _, err := f.WriteAt(pat(2*P, 1), a); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("end"), b); err != nil {
		t.Skipf("a slot past %d bytes: %v", b/P*slotSize, err)
	}
	buf := make([]byte, 3*P)
	if n, err := f.ReadAt(buf, a-P); n != len(buf) || err != nil || !bytes.Equal(buf, image(3*P, P, pat(2*P, 1))) {
		t.Errorf("ReadAt around a = %d, %v", n, err)
	}
	if got, err := f.SeekData(a + 2*P); got != b || err != nil {
		t.Errorf("SeekData = %d, %v", got, err)
	}
	if err := f.Truncate(a + 10); err != nil {
		t.Fatal(err)
	}
	if f.Allocated() != P {
		t.Errorf("Allocated %d after truncate", f.Allocated())
	}
	if n, err := f.ReadAt(buf[:20], a); n != 10 || err != io.EOF || !bytes.Equal(buf[:10], pat(2*P, 1)[:10]) {
		t.Errorf("ReadAt at the end = %d, %v", n, err)
	}
}

// TestSealedConcurrent runs the concurrent tests' rounds on a sealed pool:
// parallel readers share the sealer and its buffers.
func TestSealedConcurrent(t *testing.T) {
	p, err := NewPool(Config{Dir: t.TempDir(), Threshold: 1 << 20, RAMBudget: 24 * PageSize, Encrypt: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	rounds := 3
	if testing.Short() {
		rounds = 1
	}
	for round := range rounds {
		concurrentRegionsRound(t, p, uint64(round))
	}

	// Many files of one pool, each driven against its model.
	q := newSealedPool(t, defaultModelConfig.threshold, 8*PageSize)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			tb := goTB{t}
			m := newModel(q, -1)
			r := rand.New(rand.NewPCG(uint64(w), 0x5ea1))
			for i := range 150 {
				m.apply(tb, randOp(r, defaultModelConfig, 1))
				if i%10 == 0 {
					m.check(tb)
				}
			}
			m.check(tb)
			m.close(tb)
		})
	}
	wg.Wait()
	if st := q.Stats(); st.Files != 0 || st.RAMBytes != 0 || st.DiskBytes != 0 {
		t.Errorf("Stats after closing every file = %+v", st)
	}
}

// TestSealedKeyPerPool: two pools never share a key, so a slot of one does
// not open in the other even at the same file id and page.
func TestSealedKeyPerPool(t *testing.T) {
	p, q := newSealedPool(t, 0, 1<<20), newSealedPool(t, 0, 1<<20)
	f, _ := sealedFile(t, p, 1, 1)
	g, _ := sealedFile(t, q, 1, 1)
	f.mu.RLock()
	g.mu.RLock()
	ids := [2]uint64{sealedOf(t, f).id, sealedOf(t, g).id}
	g.mu.RUnlock()
	f.mu.RUnlock()
	if ids[0] != ids[1] {
		t.Fatalf("file ids %d and %d: the test wants them equal", ids[0], ids[1])
	}
	rawWrite(t, g, rawRead(t, f, slotSize, 0), 0)
	if _, err := g.ReadAt(make([]byte, PageSize), 0); !errors.Is(err, ErrCorrupt) {
		t.Errorf("a slot from another pool: %v", err)
	}
}

// TestSealedPunchFailureSettles: a punch that frees the pages it covers
// whole and then fails on a partial page (here, one whose slot does not
// open) leaves the file's figures, its accounter and the pool agreeing on
// what is allocated, so that closing the file credits exactly that.
func TestSealedPunchFailureSettles(t *testing.T) {
	const P = PageSize
	p := newSealedPool(t, 0, 1<<20)
	acct := newAcct()
	f := p.NewFile(acct)
	defer f.Close()
	if _, err := f.WriteAt(pat(3*P, 1), 0); err != nil {
		t.Fatal(err)
	}
	flipByte(t, f, nonceSize+10) // page 0
	// Page 1 whole, then the tail of page 0, which does not open.
	if err := f.PunchHole(100, 2*P); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("PunchHole into the bad page: %v, want ErrCorrupt", err)
	}
	if got, charged, disk := f.Allocated(), acct.Balance(), p.Stats().DiskBytes; got != 2*P || charged != 2*P || disk != 2*P {
		t.Errorf("after the failed punch: Allocated %d, charged %d, DiskBytes %d; want %d each", got, charged, disk, 2*P)
	}
	f.Close()
	if got, disk := acct.Balance(), p.Stats().DiskBytes; got != 0 || disk != 0 {
		t.Errorf("after Close: charged %d, DiskBytes %d; want 0", got, disk)
	}
	acct.check(t)
}
