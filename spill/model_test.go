package spill

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
)

// model is the reference for one File: its bytes as a plain slice and the
// set of pages the File should count as allocated.
type model struct {
	f     *File
	acct  *testAcct
	data  []byte
	pages map[int64]bool
}

func newModel(p *Pool, limit int64) *model {
	acct := newAcct()
	acct.limit = limit
	return &model{f: p.NewFile(acct), acct: acct, pages: make(map[int64]bool)}
}

type opKind uint8

const (
	opWrite opKind = iota
	opRead
	opTruncate
	opPunch
	opAllocate
	opAllocateKeep
	opSeekData
	opSeekHole
	opReopen // close the file and start again with an empty one, in RAM
	numOps
)

var opNames = [numOps]string{"WriteAt", "ReadAt", "Truncate", "PunchHole", "Allocate", "Allocate(keep)", "SeekData", "SeekHole", "Reopen"}

type op struct {
	kind opKind
	file int
	off  int64
	n    int64 // length, or new size for Truncate
	seed byte
}

func (o op) String() string {
	return fmt.Sprintf("file %d: %s(off %d, n %d)", o.file, opNames[o.kind], o.off, o.n)
}

func pageCeil(n int64) int64 { return (n + PageSize - 1) / PageSize }

func (m *model) size() int64 { return int64(len(m.data)) }

func (m *model) resize(n int64) {
	if n <= m.size() {
		clear(m.data[n:])
		m.data = m.data[:n]
	} else {
		m.data = append(m.data, make([]byte, n-m.size())...)
	}
}

// newPages counts the pages of [off, end) not yet allocated.
func (m *model) newPages(off, end int64) int64 {
	var n int64
	for pg := off / PageSize; pg*PageSize < end; pg++ {
		if !m.pages[pg] {
			n++
		}
	}
	return n
}

func (m *model) setPages(off, end int64) {
	for pg := off / PageSize; pg*PageSize < end; pg++ {
		m.pages[pg] = true
	}
}

// refuses reports whether the accounter must refuse allocating [off, end).
func (m *model) refuses(off, end int64) bool {
	grow := m.newPages(off, end) * PageSize
	return grow > 0 && m.acct.limit >= 0 && int64(len(m.pages))*PageSize+grow > m.acct.limit
}

func (m *model) seek(off int64, data bool) (int64, error) {
	if off < 0 || off >= m.size() {
		return 0, ErrNoData
	}
	for pg := off / PageSize; pg*PageSize < m.size(); pg++ {
		if m.pages[pg] == data {
			return max(off, pg*PageSize), nil
		}
	}
	if data {
		return 0, ErrNoData
	}
	return m.size(), nil
}

// apply runs o on the file and the model and checks what the call returned.
func (m *model) apply(t testing.TB, o op) {
	t.Helper()
	f := m.f
	end := o.off + o.n
	switch o.kind {
	case opWrite:
		buf := pat(int(o.n), o.seed)
		refused := m.refuses(o.off, end)
		n, err := f.WriteAt(buf, o.off)
		if refused {
			if n != 0 || !errors.Is(err, errRefused) {
				t.Fatalf("%v = %d, %v; want 0, refused", o, n, err)
			}
			return
		}
		if n != len(buf) || err != nil {
			t.Fatalf("%v = %d, %v", o, n, err)
		}
		if end > m.size() {
			m.resize(end)
		}
		copy(m.data[o.off:], buf)
		m.setPages(o.off, end)
	case opRead:
		buf := make([]byte, o.n)
		n, err := f.ReadAt(buf, o.off)
		want := max(0, min(o.n, m.size()-o.off))
		if int64(n) != want || (want < o.n) != (err == io.EOF) || (err != nil && err != io.EOF) {
			t.Fatalf("%v = %d, %v; want %d bytes (size %d)", o, n, err, want, m.size())
		}
		if n > 0 && !bytes.Equal(buf[:n], m.data[o.off:o.off+int64(n)]) {
			t.Fatalf("%v: contents differ at %d", o, o.off+int64(firstDiff(buf[:n], m.data[o.off:])))
		}
	case opTruncate:
		if err := f.Truncate(o.n); err != nil {
			t.Fatalf("%v: %v", o, err)
		}
		// tmpfs: shrinking frees the pages past the new end; growing
		// frees nothing (pages preallocated past the end stay).
		if o.n < m.size() {
			keep := pageCeil(o.n)
			for pg := range m.pages {
				if pg >= keep {
					delete(m.pages, pg)
				}
			}
		}
		m.resize(o.n)
	case opPunch:
		if err := f.PunchHole(o.off, o.n); err != nil {
			t.Fatalf("%v: %v", o, err)
		}
		if stop := min(end, m.size()); o.off < stop {
			clear(m.data[o.off:stop])
		}
		// Pages wholly inside the range, the last partial page counting
		// as whole when the range runs to its end or past; pages
		// preallocated past the end (KEEP_SIZE) are freed too.
		stop := pageCeil(m.size()) * PageSize
		for pg := range m.pages {
			stop = max(stop, (pg+1)*PageSize)
		}
		stop = min(end, stop)
		for pg := pageCeil(o.off); (pg+1)*PageSize <= stop; pg++ {
			delete(m.pages, pg)
		}
	case opAllocate, opAllocateKeep:
		keep := o.kind == opAllocateKeep
		refused := m.refuses(o.off, end)
		err := f.Allocate(o.off, o.n, keep)
		if refused {
			if !errors.Is(err, errRefused) {
				t.Fatalf("%v = %v; want refused", o, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("%v: %v", o, err)
		}
		m.setPages(o.off, end)
		if !keep && end > m.size() {
			m.resize(end)
		}
	case opSeekData, opSeekHole:
		m.checkSeek(t, o.off, o.kind == opSeekData)
	case opReopen:
		m.close(t)
		*m = *newModel(f.pool, m.acct.limit)
	}
}

func (m *model) checkSeek(t testing.TB, off int64, data bool) {
	t.Helper()
	seek, name := m.f.SeekHole, "SeekHole"
	if data {
		seek, name = m.f.SeekData, "SeekData"
	}
	got, err := seek(off)
	want, wantErr := m.seek(off, data)
	if err != wantErr || (err == nil && got != want) {
		t.Fatalf("%s(%d) = %d, %v; want %d, %v (size %d)", name, off, got, err, want, wantErr, m.size())
	}
}

// check compares everything observable about the file with the model.
func (m *model) check(t testing.TB) {
	t.Helper()
	f := m.f
	if got := f.Size(); got != m.size() {
		t.Fatalf("Size = %d, want %d", got, m.size())
	}
	if got := readAll(t, f); !bytes.Equal(got, m.data) {
		t.Fatalf("contents differ at byte %d (size %d)", firstDiff(got, m.data), m.size())
	}
	if got, want := f.Allocated(), int64(len(m.pages))*PageSize; got != want {
		t.Fatalf("Allocated = %d, want %d", got, want)
	}
	if got := m.acct.Balance(); got != int64(len(m.pages))*PageSize {
		t.Fatalf("accounter holds %d, want %d", got, int64(len(m.pages))*PageSize)
	}
	for pg := int64(0); pg <= pageCeil(m.size()); pg++ {
		for _, off := range []int64{pg * PageSize, pg*PageSize + PageSize/2} {
			m.checkSeek(t, off, true)
			m.checkSeek(t, off, false)
		}
	}
	m.checkSeek(t, m.size()-1, true)
	m.checkSeek(t, m.size()-1, false)
}

func (m *model) close(t testing.TB) {
	t.Helper()
	if err := m.f.Close(); err != nil {
		t.Fatal(err)
	}
	if got := m.acct.Balance(); got != 0 {
		t.Fatalf("accounter holds %d after Close", got)
	}
	m.acct.check(t)
}

// modelConfig shapes a pool and its files so that files cross tiers, get
// evicted and hit their accounter's limit within a short run.
type modelConfig struct {
	threshold, budget int64
	limits            []int64 // per file accounter limit, -1 for none
	maxOff, maxLen    int64
	encrypt           bool
	// dedicatedMin, if not 0, is the size from which a plain file moves
	// to a dedicated spill file, of which the pool may hold dedicated
	// (Config.DedicatedFiles).
	dedicatedMin, dedicated int64
}

var defaultModelConfig = modelConfig{
	threshold: 24 << 10,
	budget:    48 << 10,
	limits:    []int64{-1, -1, 12 * PageSize, -1},
	maxOff:    96 << 10,
	maxLen:    3 * PageSize,
}

func randOp(r *rand.Rand, cfg modelConfig, nFiles int) op {
	pick := func(limit int64) int64 {
		switch r.IntN(4) {
		case 0: // page aligned
			return r.Int64N(limit/PageSize+1) * PageSize
		case 1: // near a page boundary
			return max(0, r.Int64N(limit/PageSize+1)*PageSize+r.Int64N(5)-2)
		default:
			return r.Int64N(limit + 1)
		}
	}
	o := op{kind: opKind(r.IntN(int(numOps))), file: r.IntN(nFiles), seed: byte(r.Uint32())}
	if o.kind == opReopen && r.IntN(2) != 0 {
		o.kind = opWrite // a file should live long enough to grow
	}
	o.off = pick(cfg.maxOff)
	o.n = max(1, pick(cfg.maxLen))
	if o.kind == opTruncate {
		o.n = pick(cfg.maxOff)
		if r.IntN(3) == 0 {
			o.n = min(o.n, cfg.threshold) // shrinks are worth more than one in two
		}
	}
	if o.kind == opPunch && r.IntN(4) == 0 {
		o.n = 1 << 40 // to the end and beyond
	}
	return o
}

// runModel applies ops to files sharing one pool, checking each file against
// its model and the pool against its files after every step.
func runModel(t testing.TB, dir string, cfg modelConfig, ops []op) {
	t.Helper()
	p, err := NewPool(Config{Dir: dir, Threshold: cfg.threshold, RAMBudget: cfg.budget, Encrypt: cfg.encrypt, DedicatedFiles: cfg.dedicated})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if cfg.dedicatedMin > 0 {
		p.dedicatedMin = cfg.dedicatedMin
	}
	models := make([]*model, len(cfg.limits))
	files := make([]*File, len(cfg.limits))
	for i, limit := range cfg.limits {
		models[i] = newModel(p, limit)
		files[i] = models[i].f
	}
	for i, o := range ops {
		m := models[o.file%len(models)]
		m.apply(t, o)
		files[o.file%len(models)] = m.f
		m.check(t)
		checkPool(t, p, files)
		if t.Failed() {
			t.Fatalf("after step %d: %v", i, o)
		}
	}
	for _, m := range models {
		m.check(t)
		m.close(t)
	}
	if st := p.Stats(); st.RAMBytes != 0 || st.DiskBytes != 0 || st.Files != 0 || st.DiskFiles != 0 {
		t.Fatalf("Stats after closing every file = %+v", st)
	}
	checkSharedEmpty(t, p)
	checkEmptyDir(t, p)
}

func TestModel(t *testing.T) {
	configs := map[string]modelConfig{
		"default": defaultModelConfig,
		"all on disk": {
			threshold: 0, budget: 1 << 20, limits: []int64{-1, 8 * PageSize},
			maxOff: 64 << 10, maxLen: 3 * PageSize,
		},
		"tiny budget": {
			threshold: 64 << 10, budget: 4 * PageSize, limits: []int64{-1, -1, -1},
			maxOff: 48 << 10, maxLen: 2 * PageSize,
		},
		// Many small files sharing the shared spill files, closed and
		// made again often: extents are freed and placed again.
		"small files": {
			threshold: 0, budget: 1 << 20, limits: []int64{-1, -1, -1, -1, -1, 6 * PageSize},
			maxOff: 20 << 10, maxLen: 2 * PageSize,
		},
		// Files past 8 pages move to a dedicated spill file, one at a
		// time: the others stay in the shared files.
		"dedicated": {
			threshold: 8 << 10, budget: 1 << 20, limits: []int64{-1, -1, 10 * PageSize},
			maxOff: 96 << 10, maxLen: 5 * PageSize, dedicatedMin: 8 * PageSize, dedicated: 1,
		},
	}
	for name, cfg := range maps.Clone(configs) {
		cfg.encrypt = true
		configs[name+", encrypted"] = cfg
	}
	steps := 400
	if testing.Short() {
		steps = 100
	}
	for name, cfg := range configs {
		for seed := range uint64(8) {
			t.Run(fmt.Sprintf("%s/seed%d", name, seed), func(t *testing.T) {
				r := rand.New(rand.NewPCG(seed, 0x5e11))
				ops := make([]op, steps)
				for i := range ops {
					ops[i] = randOp(r, cfg, len(cfg.limits))
				}
				runModel(t, t.TempDir(), cfg, ops)
			})
		}
	}
}

// goTB lets a helper goroutine use test helpers that call Fatal: it records
// the failure and ends only that goroutine.
type goTB struct{ testing.TB }

func (g goTB) Fatal(args ...any) { g.TB.Helper(); g.TB.Error(args...); runtime.Goexit() }
func (g goTB) Fatalf(format string, args ...any) {
	g.TB.Helper()
	g.TB.Errorf(format, args...)
	runtime.Goexit()
}
func (g goTB) FailNow() { g.TB.Fail(); runtime.Goexit() }

// TestModelConcurrentFiles drives several files of one small-budget pool
// from their own goroutines, each against its own model: a file's contents
// must not depend on what other files do to the budget.
func TestModelConcurrentFiles(t *testing.T) {
	cfg := defaultModelConfig
	cfg.budget = 8 * PageSize
	p := newTestPool(t, cfg.threshold, cfg.budget)
	const workers = 6
	steps := 300
	if testing.Short() {
		steps = 80
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			tb := goTB{t}
			limit := int64(-1)
			if w%3 == 2 {
				limit = 10 * PageSize
			}
			m := newModel(p, limit)
			r := rand.New(rand.NewPCG(uint64(w), 0xc0c0))
			for i := range steps {
				if i%50 == 49 {
					// Start afresh in RAM, so the budget stays contended.
					m.check(tb)
					m.close(tb)
					m = newModel(p, limit)
				}
				o := randOp(r, cfg, 1)
				m.apply(tb, o)
				if i%8 == 0 {
					m.check(tb)
				}
				if st := p.Stats(); st.RAMBytes > cfg.budget {
					tb.Fatalf("RAMBytes %d over the budget %d", st.RAMBytes, cfg.budget)
				}
			}
			m.check(tb)
			m.close(tb)
		})
	}
	wg.Wait()
	if st := p.Stats(); st.RAMBytes != 0 || st.DiskBytes != 0 || st.Files != 0 {
		t.Errorf("Stats after closing every file = %+v", st)
	}
	t.Logf("spills: %d", p.Stats().Spills)
}

// TestConcurrentRegions has writers fill disjoint regions of one file while
// readers check what they see and other goroutines keep making new files
// that push RAM files, this one included, out to disk. Each round spills the
// file at a different moment.
func TestConcurrentRegions(t *testing.T) {
	rounds := 6
	if testing.Short() {
		rounds = 2
	}
	// The file outgrows the budget but not the threshold: it must spill at
	// some point, by itself or evicted by the other files.
	p := newTestPool(t, 1<<20, 24*PageSize)
	for round := range rounds {
		concurrentRegionsRound(t, p, uint64(round))
	}
	if st := p.Stats(); st.Files != 0 || st.RAMBytes != 0 || st.DiskBytes != 0 {
		t.Errorf("Stats after every round = %+v", st)
	}
	t.Logf("spills: %d", p.Stats().Spills)
}

func concurrentRegionsRound(t *testing.T, p *Pool, round uint64) {
	const (
		writers = 8
		region  = 6*PageSize + 123 // regions do not line up with pages
		passes  = 3
		chunk   = 1000
	)
	acct := newAcct()
	f := p.NewFile(acct)
	defer f.Close()
	// value is what writer w leaves at a byte in pass k: never zero, and
	// its high nibble names the writer.
	value := func(w, k, pos int) byte { return byte(w<<4 | ((k*3+pos)%15 + 1)) }

	var writersWG, othersWG sync.WaitGroup
	done := make(chan struct{})
	for w := range writers {
		writersWG.Go(func() {
			tb := goTB{t}
			r := rand.New(rand.NewPCG(uint64(w), round))
			base := w * region
			for k := range passes {
				// Write the region in chunks, in a random order.
				for _, c := range r.Perm((region + chunk - 1) / chunk) {
					lo, hi := c*chunk, min(region, (c+1)*chunk)
					buf := make([]byte, hi-lo)
					for i := range buf {
						buf[i] = value(w, k, lo+i)
					}
					if n, err := f.WriteAt(buf, int64(base+lo)); n != len(buf) || err != nil {
						tb.Fatalf("writer %d: WriteAt = %d, %v", w, n, err)
					}
				}
			}
		})
	}
	for rd := range 3 {
		othersWG.Go(func() {
			tb := goTB{t}
			r := rand.New(rand.NewPCG(uint64(rd), round+100))
			buf := make([]byte, 3*PageSize)
			for {
				select {
				case <-done:
					return
				default:
				}
				off := r.Int64N(writers * region)
				n, err := f.ReadAt(buf, off)
				if err != nil && err != io.EOF {
					tb.Fatalf("reader: %v", err)
				}
				for i, v := range buf[:n] {
					pos := off + int64(i)
					if v != 0 && int64(v>>4) != pos/region {
						tb.Fatalf("reader: byte %d is %#x, not from writer %d", pos, v, pos/region)
					}
				}
				if _, err := f.SeekData(off); err != nil && err != ErrNoData {
					tb.Fatalf("SeekData: %v", err)
				}
			}
		})
	}
	for o := range 2 {
		othersWG.Go(func() {
			tb := goTB{t}
			buf := pat(4*PageSize, byte(o))
			for {
				select {
				case <-done:
					return
				default:
				}
				// A new file in RAM each time, so RAM stays in demand.
				g := p.NewFile(newAcct())
				for i := range int64(3) {
					if _, err := g.WriteAt(buf, i*4*PageSize); err != nil {
						tb.Fatalf("other file: %v", err)
					}
				}
				want := image(12*PageSize, 0, buf, 4*PageSize, buf, 8*PageSize, buf)
				if got := readAll(tb, g); !bytes.Equal(got, want) {
					tb.Fatalf("other file: contents differ at %d", firstDiff(got, want))
				}
				g.Close()
				if st := p.Stats(); st.RAMBytes > p.RAMBudget() {
					tb.Fatalf("RAMBytes %d over the budget", st.RAMBytes)
				}
			}
		})
	}
	writersWG.Wait()
	close(done)
	othersWG.Wait()

	want := make([]byte, writers*region)
	for i := range want {
		want[i] = value(i/region, passes-1, i%region)
	}
	checkContents(t, f, want)
	if !f.OnDisk() {
		t.Error("a file larger than the budget is still in RAM")
	}
	if got := f.Allocated(); got != pageCeil(int64(len(want)))*PageSize || acct.Balance() != got {
		t.Errorf("Allocated %d, charged %d", got, acct.Balance())
	}
	checkPool(t, p, []*File{f})
	acct.check(t)
}
