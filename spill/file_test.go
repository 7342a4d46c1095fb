package spill

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
)

var errRefused = errors.New("test: accounter refuses")

// testAcct is an Accounter that records its balance, can be told to refuse
// charges (all of them, or those that would pass a limit), and notes any
// misuse: negative or unaligned amounts, or a balance below zero.
type testAcct struct {
	mu      sync.Mutex
	balance int64
	limit   int64 // refuse a charge that would take the balance past it; < 0: none
	refuse  bool
	bad     string // first misuse seen
}

func newAcct() *testAcct { return &testAcct{limit: -1} }

func (a *testAcct) noteLocked(format string, args ...any) {
	if a.bad == "" {
		a.bad = fmt.Sprintf(format, args...)
	}
}

func (a *testAcct) Reserve(n int64) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if n < 0 || n%PageSize != 0 {
		a.noteLocked("Reserve(%d)", n)
	}
	if n == 0 {
		return nil // like quota.Account: nothing to charge, nothing to refuse
	}
	if a.refuse || (a.limit >= 0 && a.balance+n > a.limit) {
		return errRefused
	}
	a.balance += n
	return nil
}

func (a *testAcct) Release(n int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if n < 0 || n%PageSize != 0 {
		a.noteLocked("Release(%d)", n)
	}
	a.balance -= n
	if a.balance < 0 {
		a.noteLocked("balance %d after Release(%d)", a.balance, n)
	}
}

func (a *testAcct) Balance() int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.balance
}

func (a *testAcct) setRefuse(v bool) {
	a.mu.Lock()
	a.refuse = v
	a.mu.Unlock()
}

func (a *testAcct) check(t testing.TB) {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.bad != "" {
		t.Errorf("accounter misused: %s", a.bad)
	}
}

// nopAcct accepts every charge.
type nopAcct struct{}

func (nopAcct) Reserve(int64) error { return nil }
func (nopAcct) Release(int64)       {}

func newTestPool(t testing.TB, threshold, budget int64) *Pool {
	t.Helper()
	p, err := NewPool(Config{Dir: t.TempDir(), Threshold: threshold, RAMBudget: budget})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// removeSpillDirs removes the pool's private directory and the spill
// directory it is in, so that no spill can succeed: a private directory
// removed alone is made again (TestPrivateDirRemoved).
func removeSpillDirs(t testing.TB, p *Pool) {
	t.Helper()
	for _, dir := range []string{p.Dir(), filepath.Dir(p.Dir())} {
		if err := os.Remove(dir); err != nil {
			t.Fatal(err)
		}
	}
}

// forceSpill moves f to disk as the pool would.
func forceSpill(t testing.TB, f *File) {
	t.Helper()
	f.mu.Lock()
	err := f.spillLocked()
	f.mu.Unlock()
	if err != nil {
		t.Fatalf("spill: %v", err)
	}
}

// diskOf is the disk tier of f, which must have spilled. The caller holds
// f.mu.
func diskOf(t testing.TB, f *File) *diskPages {
	t.Helper()
	switch d := f.tier.(type) {
	case *plainDisk:
		return &d.diskPages
	case *sealedDisk:
		return &d.diskPages
	}
	t.Fatalf("file not on disk: tier %T", f.tier)
	return nil
}

// osFile is the disk file that holds d's bytes: its dedicated file, or
// the shared file its extents are in.
func (d *diskPages) osFile() *os.File {
	if f := d.st.file(); f != nil {
		return f
	}
	return d.st.(*sharedSpace).sf.f
}

// pat returns n bytes of a pattern that never contains zero.
func pat(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7+int(seed)*31)%251 + 1
	}
	return b
}

// image builds expected contents: size zero bytes with pieces laid on top.
func image(size int, pieces ...any) []byte {
	b := make([]byte, size)
	for i := 0; i < len(pieces); i += 2 {
		copy(b[pieces[i].(int):], pieces[i+1].([]byte))
	}
	return b
}

// readAll reads the whole file with one ReadAt that asks for more than is
// there, checking the io.ReaderAt contract on the way.
func readAll(t testing.TB, f *File) []byte {
	t.Helper()
	size := f.Size()
	buf := make([]byte, size+7)
	n, err := f.ReadAt(buf, 0)
	if int64(n) != size || err != io.EOF {
		t.Fatalf("ReadAt(%d bytes, 0) on size %d = %d, %v; want %d, EOF", len(buf), size, n, err, size)
	}
	return buf[:n]
}

// checkContents compares f with want, in one read and in unaligned pieces.
func checkContents(t testing.TB, f *File, want []byte) {
	t.Helper()
	if got := f.Size(); got != int64(len(want)) {
		t.Fatalf("Size = %d, want %d", got, len(want))
	}
	if got := readAll(t, f); !bytes.Equal(got, want) {
		t.Fatalf("contents differ at byte %d (size %d)", firstDiff(got, want), len(want))
	}
	buf := make([]byte, 3001)
	for off := 0; off < len(want); off += 2999 {
		n, err := f.ReadAt(buf, int64(off))
		wantN := min(len(buf), len(want)-off)
		if n != wantN || (n < len(buf)) != (err == io.EOF) || (err != nil && err != io.EOF) {
			t.Fatalf("ReadAt(%d, %d) = %d, %v; want %d", len(buf), off, n, err, wantN)
		}
		if !bytes.Equal(buf[:n], want[off:off+n]) {
			t.Fatalf("ReadAt(%d, %d): contents differ", len(buf), off)
		}
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// checkEmptyDir fails if the pool's private directory holds any name.
func checkEmptyDir(t testing.TB, p *Pool) {
	t.Helper()
	entries, err := os.ReadDir(p.Dir())
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Fatalf("private directory holds %d names, first %q", len(entries), entries[0].Name())
	}
}

type tierCase struct {
	name      string
	threshold int64
	spill     bool // spill explicitly after the ops, before checking
}

var tierCases = []tierCase{
	{"ram", 1 << 20, false},
	{"disk", 0, false},
	{"spilled", 1 << 20, true},
}

type seekWant struct {
	data bool
	off  int64
	want int64 // -1: ErrNoData
}

func TestFileOps(t *testing.T) {
	const P = PageSize
	a := pat(3*P, 1)
	cases := []struct {
		name  string
		run   func(f *File) error
		want  []byte
		pages int64
		seeks []seekWant
	}{
		{
			name:  "empty",
			run:   func(f *File) error { return nil },
			want:  nil,
			seeks: []seekWant{{true, 0, -1}, {false, 0, -1}},
		},
		{
			name:  "small write",
			run:   func(f *File) error { _, err := f.WriteAt([]byte("hello"), 0); return err },
			want:  []byte("hello"),
			pages: 1,
			seeks: []seekWant{{true, 0, 0}, {true, 4, 4}, {false, 0, 5}, {false, 4, 5}, {true, 5, -1}, {false, 5, -1}},
		},
		{
			name:  "sparse write",
			run:   func(f *File) error { _, err := f.WriteAt([]byte("x"), 10000); return err },
			want:  image(10001, 10000, []byte("x")),
			pages: 1,
			seeks: []seekWant{
				{true, 0, 2 * P}, {false, 0, 0}, {false, 5000, 5000}, {true, 2 * P, 2 * P},
				{true, 9000, 9000}, {false, 2 * P, 10001}, {false, 10000, 10001}, {true, 10001, -1},
			},
		},
		{
			name:  "write across a page boundary",
			run:   func(f *File) error { _, err := f.WriteAt(a[:20], P-6); return err },
			want:  image(P+14, P-6, a[:20]),
			pages: 2,
			seeks: []seekWant{{true, 0, 0}, {false, 0, P + 14}},
		},
		{
			name: "overwrite",
			run: func(f *File) error {
				if _, err := f.WriteAt(a[:2*P], 0); err != nil {
					return err
				}
				_, err := f.WriteAt(pat(100, 9), 50)
				return err
			},
			want:  image(2*P, 0, a[:2*P], 50, pat(100, 9)),
			pages: 2,
		},
		{
			name:  "truncate grow",
			run:   func(f *File) error { return f.Truncate(10000) },
			want:  image(10000),
			seeks: []seekWant{{true, 0, -1}, {false, 0, 0}, {false, 9999, 9999}, {true, 10000, -1}},
		},
		{
			name: "truncate shrink then grow",
			run: func(f *File) error {
				f.WriteAt(a, 0)
				if err := f.Truncate(5000); err != nil {
					return err
				}
				return f.Truncate(3 * P)
			},
			want:  image(3*P, 0, a[:5000]),
			pages: 2,
			seeks: []seekWant{{true, 0, 0}, {false, 0, 2 * P}, {true, 2 * P, -1}, {false, 5000, 2 * P}},
		},
		{
			name: "truncate to a page boundary then grow",
			run: func(f *File) error {
				f.WriteAt(a, 0)
				f.Truncate(P)
				return f.Truncate(2*P + 1)
			},
			want:  image(2*P+1, 0, a[:P]),
			pages: 1,
			seeks: []seekWant{{false, 0, P}, {true, P, -1}},
		},
		{
			name: "truncate to zero then grow",
			run: func(f *File) error {
				f.WriteAt(a, 0)
				f.Truncate(0)
				return f.Truncate(3 * P)
			},
			want: image(3 * P),
		},
		{
			name: "truncate shrink then write past the end",
			run: func(f *File) error {
				f.WriteAt(a, 0)
				f.Truncate(100)
				_, err := f.WriteAt([]byte("z"), 3*P)
				return err
			},
			want:  image(3*P+1, 0, a[:100], 3*P, []byte("z")),
			pages: 2,
			seeks: []seekWant{{false, 0, P}, {true, P, 3 * P}},
		},
		{
			name: "punch a whole page",
			run: func(f *File) error {
				f.WriteAt(a, 0)
				return f.PunchHole(P, P)
			},
			want:  image(3*P, 0, a[:P], 2*P, a[2*P:]),
			pages: 2,
			seeks: []seekWant{{false, 0, P}, {true, P, 2 * P}, {true, 5000, 2 * P}, {false, 5000, 5000}, {false, 2 * P, 3 * P}},
		},
		{
			name: "punch inside a page",
			run: func(f *File) error {
				f.WriteAt(a, 0)
				return f.PunchHole(100, 200)
			},
			want:  image(3*P, 0, a[:100], 300, a[300:]),
			pages: 3,
		},
		{
			name: "punch an unaligned span",
			run: func(f *File) error {
				f.WriteAt(a, 0)
				return f.PunchHole(100, 2*P)
			},
			want:  image(3*P, 0, a[:100], 2*P+100, a[2*P+100:]),
			pages: 2,
			seeks: []seekWant{{false, 0, P}, {true, P, 2 * P}},
		},
		{
			name: "punch over the end frees the last partial page",
			run: func(f *File) error {
				f.WriteAt(a[:5000], 0)
				return f.PunchHole(P, P)
			},
			want:  image(5000, 0, a[:P]),
			pages: 1,
			seeks: []seekWant{{false, 0, P}, {true, P, -1}},
		},
		{
			name: "punch up to the end keeps the last partial page",
			run: func(f *File) error {
				f.WriteAt(a[:5000], 0)
				return f.PunchHole(P, 5000-P)
			},
			want:  image(5000, 0, a[:P]),
			pages: 2,
		},
		{
			name: "punch the whole file",
			run: func(f *File) error {
				f.WriteAt(a[:5000], 0)
				return f.PunchHole(0, 1<<40)
			},
			want:  image(5000),
			seeks: []seekWant{{true, 0, -1}, {false, 100, 100}},
		},
		{
			name: "punch past the end",
			run: func(f *File) error {
				f.WriteAt(a[:100], 0)
				return f.PunchHole(2*P, 100)
			},
			want:  image(100, 0, a[:100]),
			pages: 1,
		},
		{
			name:  "allocate grows",
			run:   func(f *File) error { return f.Allocate(0, 10000, false) },
			want:  image(10000),
			pages: 3,
			seeks: []seekWant{{true, 0, 0}, {false, 0, 10000}, {true, 9999, 9999}},
		},
		{
			name: "allocate keeping the size",
			run: func(f *File) error {
				f.WriteAt(a[:100], 0)
				return f.Allocate(0, 3*P, true)
			},
			want:  image(100, 0, a[:100]),
			pages: 3,
			seeks: []seekWant{{false, 0, 100}},
		},
		{
			name: "allocate keeping the size, then grow",
			run: func(f *File) error {
				f.WriteAt(a[:100], 0)
				f.Allocate(0, 3*P, true)
				return f.Truncate(5000)
			},
			want: image(5000, 0, a[:100]),
			// Growing frees nothing: the third page, preallocated past
			// the new end, stays allocated, as on tmpfs.
			pages: 3,
			seeks: []seekWant{{false, 0, 5000}},
		},
		{
			name: "allocate keeping the size, then write past it",
			run: func(f *File) error {
				f.Allocate(0, 3*P, true)
				_, err := f.WriteAt([]byte("q"), 2*P+5)
				return err
			},
			want:  image(2*P+6, 2*P+5, []byte("q")),
			pages: 3,
			seeks: []seekWant{{true, 0, 0}, {false, 0, 2*P + 6}},
		},
		{
			name: "allocate over data",
			run: func(f *File) error {
				f.WriteAt(a[:P], 0)
				return f.Allocate(P/2, 2*P, false)
			},
			want:  image(P/2+2*P, 0, a[:P]),
			pages: 3,
		},
		{
			name: "allocate a hole in the middle",
			run: func(f *File) error {
				f.WriteAt([]byte("x"), 5*P)
				return f.Allocate(2*P, P, false)
			},
			want:  image(5*P+1, 5*P, []byte("x")),
			pages: 2,
			seeks: []seekWant{{true, 0, 2 * P}, {false, 2 * P, 3 * P}, {true, 3 * P, 5 * P}, {false, 0, 0}},
		},
	}
	for _, tc := range tierCases {
		for _, c := range cases {
			t.Run(tc.name+"/"+c.name, func(t *testing.T) {
				p := newTestPool(t, tc.threshold, 1<<20)
				acct := newAcct()
				f := p.NewFile(acct)
				if err := c.run(f); err != nil {
					t.Fatal(err)
				}
				if tc.spill {
					forceSpill(t, f)
				}
				checkContents(t, f, c.want)
				if got, want := f.Allocated(), c.pages*PageSize; got != want {
					t.Errorf("Allocated = %d, want %d", got, want)
				}
				if got := acct.Balance(); got != f.Allocated() {
					t.Errorf("accounter holds %d, Allocated %d", got, f.Allocated())
				}
				nonEmpty := c.want != nil || c.pages > 0
				wantDisk := tc.spill || (tc.threshold == 0 && nonEmpty)
				if f.OnDisk() != wantDisk {
					t.Errorf("OnDisk = %v, want %v", f.OnDisk(), wantDisk)
				}
				want := Stats{RAMBytes: f.Allocated(), Files: 1}
				if wantDisk {
					want = Stats{DiskBytes: f.Allocated(), Spills: 1, Files: 1, DiskFiles: 1}
				}
				if got := p.Stats(); got != want {
					t.Errorf("Stats = %+v, want %+v", got, want)
				}
				for _, s := range c.seeks {
					seek, name := f.SeekHole, "SeekHole"
					if s.data {
						seek, name = f.SeekData, "SeekData"
					}
					got, err := seek(s.off)
					if s.want < 0 {
						if err != ErrNoData {
							t.Errorf("%s(%d) = %d, %v; want ErrNoData", name, s.off, got, err)
						}
					} else if got != s.want || err != nil {
						t.Errorf("%s(%d) = %d, %v; want %d", name, s.off, got, err, s.want)
					}
				}
				checkEmptyDir(t, p)
				if err := f.Close(); err != nil {
					t.Fatal(err)
				}
				if got := acct.Balance(); got != 0 {
					t.Errorf("after Close the accounter holds %d", got)
				}
				if got := p.Stats(); got != (Stats{Spills: want.Spills}) {
					t.Errorf("after Close Stats = %+v", got)
				}
				acct.check(t)
			})
		}
	}
}

func TestReadAtEdges(t *testing.T) {
	for _, tc := range tierCases {
		t.Run(tc.name, func(t *testing.T) {
			p := newTestPool(t, tc.threshold, 1<<20)
			f := p.NewFile(newAcct())
			defer f.Close()
			data := pat(5000, 3)
			if _, err := f.WriteAt(data, 0); err != nil {
				t.Fatal(err)
			}
			if tc.spill {
				forceSpill(t, f)
			}
			buf := make([]byte, 100)
			if n, err := f.ReadAt(buf, 4900); n != 100 || err != nil {
				t.Errorf("ReadAt ending at the size = %d, %v; want 100, nil", n, err)
			}
			if n, err := f.ReadAt(buf, 4950); n != 50 || err != io.EOF || !bytes.Equal(buf[:50], data[4950:]) {
				t.Errorf("ReadAt across the size = %d, %v; want 50, EOF", n, err)
			}
			for _, off := range []int64{5000, 5001, 1 << 40} {
				if n, err := f.ReadAt(buf, off); n != 0 || err != io.EOF {
					t.Errorf("ReadAt(%d) = %d, %v; want 0, EOF", off, n, err)
				}
			}
			if _, err := f.ReadAt(buf, -1); !errors.Is(err, ErrInvalid) {
				t.Errorf("ReadAt at a negative offset: %v, want ErrInvalid", err)
			}
			if n, err := f.ReadAt(nil, 10); n != 0 || err != nil {
				t.Errorf("empty ReadAt = %d, %v", n, err)
			}
			if _, err := f.WriteAt([]byte("x"), -1); !errors.Is(err, ErrInvalid) {
				t.Errorf("WriteAt at a negative offset: %v, want ErrInvalid", err)
			}
			if _, err := f.WriteAt([]byte("xy"), math.MaxInt64); !errors.Is(err, ErrInvalid) {
				t.Errorf("WriteAt whose end overflows: %v, want ErrInvalid", err)
			}
			if n, err := f.WriteAt(nil, 1<<30); n != 0 || err != nil {
				t.Errorf("empty WriteAt = %d, %v", n, err)
			}
			for _, bad := range [][2]int64{{-1, 10}, {0, 0}, {0, -1}, {1 << 62, 1 << 62}} {
				if err := f.PunchHole(bad[0], bad[1]); !errors.Is(err, ErrInvalid) {
					t.Errorf("PunchHole(%d, %d): %v, want ErrInvalid", bad[0], bad[1], err)
				}
				if err := f.Allocate(bad[0], bad[1], false); !errors.Is(err, ErrInvalid) {
					t.Errorf("Allocate(%d, %d): %v, want ErrInvalid", bad[0], bad[1], err)
				}
			}
			if err := f.Truncate(-1); !errors.Is(err, ErrInvalid) {
				t.Errorf("Truncate(-1): %v, want ErrInvalid", err)
			}
			if _, err := f.SeekData(-1); err != ErrNoData {
				t.Errorf("SeekData(-1) = %v", err)
			}
			checkContents(t, f, data)
		})
	}
}

// TestSpillFailureChangesNothing makes every spill fail, in two ways, and
// checks that an operation that needed a spill fails without changing the
// file, and works once spills can work again.
func TestSpillFailureChangesNothing(t *testing.T) {
	const P = PageSize
	data := pat(P+10, 4)
	ops := []struct {
		name string
		run  func(f *File) error
	}{
		{"WriteAt past the threshold", func(f *File) error { _, err := f.WriteAt(pat(3*P, 5), 100); return err }},
		{"WriteAt far past the threshold", func(f *File) error { _, err := f.WriteAt([]byte("x"), 1<<30); return err }},
		{"Truncate past the threshold", func(f *File) error { return f.Truncate(2*P + 1) }},
		{"Allocate past the threshold", func(f *File) error { return f.Allocate(P, 2*P, false) }},
		{"Allocate keeping the size past the threshold", func(f *File) error { return f.Allocate(P, 2*P, true) }},
	}
	// Each way to break spills returns what mends it, or nil if nothing
	// can.
	breaks := []struct {
		name        string
		breakSpills func(t *testing.T, p *Pool) (mend func())
	}{
		{"spill directory removed", func(t *testing.T, p *Pool) func() {
			removeSpillDirs(t, p)
			return nil
		}},
	}
	for _, br := range breaks {
		for _, op := range ops {
			t.Run(br.name+"/"+op.name, func(t *testing.T) {
				p := newTestPool(t, 2*P, 1<<20)
				acct := newAcct()
				f := p.NewFile(acct)
				defer f.Close()
				if _, err := f.WriteAt(data, 0); err != nil {
					t.Fatal(err)
				}
				mend := br.breakSpills(t, p)
				before := p.Stats()
				unchanged := func(when string) {
					t.Helper()
					if err := op.run(f); err == nil {
						t.Fatalf("operation succeeded %s", when)
					}
					checkContents(t, f, data)
					if f.OnDisk() || f.Allocated() != 2*P || acct.Balance() != 2*P {
						t.Errorf("OnDisk %v, Allocated %d, charged %d; want RAM, %d, %d", f.OnDisk(), f.Allocated(), acct.Balance(), 2*P, 2*P)
					}
					if got := p.Stats(); got != before || got.RAMBytes != 2*P {
						t.Errorf("Stats = %+v, want %+v with RAMBytes %d", got, before, 2*P)
					}
				}
				unchanged("with spills failing")
				if mend == nil {
					// Directories made again at the same paths are not the
					// pool's: the pool holds its own by descriptor.
					if err := os.MkdirAll(p.Dir(), 0o700); err != nil {
						t.Fatal(err)
					}
					unchanged("in directories made again at the spill and private directories' paths")
					if entries, _ := os.ReadDir(p.Dir()); len(entries) != 0 {
						t.Errorf("the new directory at the private directory's path holds %s", entries[0].Name())
					}
					if entries, _ := os.ReadDir(filepath.Dir(p.Dir())); len(entries) != 1 {
						t.Errorf("the new directory at the spill directory's path holds %d names, want only the one made by the test", len(entries))
					}
					return
				}
				mend()
				if err := op.run(f); err != nil {
					t.Fatal(err)
				}
				if !f.OnDisk() {
					t.Error("file still in RAM")
				}
				acct.check(t)
			})
		}
	}

	t.Run("no RAM and no disk", func(t *testing.T) {
		p := newTestPool(t, 1<<20, 2*P)
		acct := newAcct()
		f := p.NewFile(acct)
		defer f.Close()
		if _, err := f.WriteAt(data, 0); err != nil {
			t.Fatal(err)
		}
		removeSpillDirs(t, p)
		if _, err := f.WriteAt([]byte("y"), 2*P); err == nil {
			t.Fatal("write needing a third page of a two-page budget succeeded")
		}
		checkContents(t, f, data)
		if f.OnDisk() || f.Allocated() != 2*P || acct.Balance() != 2*P {
			t.Errorf("OnDisk %v, Allocated %d, charged %d", f.OnDisk(), f.Allocated(), acct.Balance())
		}
		if got := p.Stats().RAMBytes; got != 2*P {
			t.Errorf("RAMBytes = %d", got)
		}
		acct.check(t)
	})
}

// TestRefusedChargeChangesNothing checks, in both tiers and across the
// threshold, that a charge the accounter refuses leaves the file as it was.
func TestRefusedChargeChangesNothing(t *testing.T) {
	const P = PageSize
	data := pat(P+10, 4)
	ops := []struct {
		name string
		run  func(f *File) error
	}{
		{"WriteAt a new page", func(f *File) error { _, err := f.WriteAt([]byte("x"), 2*P+5); return err }},
		{"WriteAt past a hole", func(f *File) error { _, err := f.WriteAt([]byte("x"), 10*P); return err }},
		{"WriteAt across the threshold", func(f *File) error { _, err := f.WriteAt(pat(P, 6), 3*P); return err }},
		{"WriteAt partly over data", func(f *File) error { _, err := f.WriteAt(pat(2*P, 6), 100); return err }},
		{"Allocate", func(f *File) error { return f.Allocate(0, 5*P, false) }},
		{"Allocate keeping the size", func(f *File) error { return f.Allocate(2*P, P, true) }},
	}
	for _, tc := range tierCases {
		for _, op := range ops {
			t.Run(tc.name+"/"+op.name, func(t *testing.T) {
				threshold := tc.threshold
				if threshold != 0 {
					threshold = 3 * P // the third op crosses it
				}
				p := newTestPool(t, threshold, 1<<20)
				acct := newAcct()
				f := p.NewFile(acct)
				defer f.Close()
				if _, err := f.WriteAt(data, 0); err != nil {
					t.Fatal(err)
				}
				if tc.spill {
					forceSpill(t, f)
				}
				acct.setRefuse(true)
				if err := op.run(f); !errors.Is(err, errRefused) {
					t.Fatalf("err = %v, want the accounter's refusal", err)
				}
				checkContents(t, f, data)
				if f.Allocated() != 2*P || acct.Balance() != 2*P {
					t.Errorf("Allocated %d, charged %d; want %d", f.Allocated(), acct.Balance(), 2*P)
				}
				st := p.Stats()
				if st.RAMBytes+st.DiskBytes != 2*P {
					t.Errorf("Stats = %+v", st)
				}
				// Rewriting allocated pages needs no charge.
				if _, err := f.WriteAt([]byte("abc"), 10); err != nil {
					t.Errorf("overwrite refused: %v", err)
				}
				acct.setRefuse(false)
				if err := op.run(f); err != nil {
					t.Fatal(err)
				}
				if acct.Balance() != f.Allocated() {
					t.Errorf("charged %d, Allocated %d", acct.Balance(), f.Allocated())
				}
				acct.check(t)
			})
		}
	}
}

func TestThreshold(t *testing.T) {
	const P = PageSize
	t.Run("zero", func(t *testing.T) {
		p := newTestPool(t, 0, 1<<20)
		empty := p.NewFile(newAcct())
		defer empty.Close()
		if empty.OnDisk() {
			t.Error("an empty file is on disk")
		}
		if err := empty.Truncate(0); err != nil || empty.OnDisk() {
			t.Errorf("Truncate(0): %v, OnDisk %v", err, empty.OnDisk())
		}
		for i, op := range []func(f *File) error{
			func(f *File) error { _, err := f.WriteAt([]byte{1}, 0); return err },
			func(f *File) error { return f.Truncate(1) },
			func(f *File) error { return f.Allocate(0, 1, false) },
			func(f *File) error { return f.Allocate(0, 1, true) },
		} {
			f := p.NewFile(newAcct())
			if err := op(f); err != nil {
				t.Fatal(err)
			}
			if !f.OnDisk() {
				t.Errorf("op %d: file in RAM with threshold 0", i)
			}
			f.Close()
		}
		if st := p.Stats(); st.RAMBytes != 0 || st.Spills != 4 {
			t.Errorf("Stats = %+v", st)
		}
	})
	t.Run("boundary", func(t *testing.T) {
		p := newTestPool(t, 2*P, 1<<20)
		f := p.NewFile(newAcct())
		defer f.Close()
		if _, err := f.WriteAt(pat(2*P, 1), 0); err != nil || f.OnDisk() {
			t.Fatalf("a write up to the threshold: %v, OnDisk %v", err, f.OnDisk())
		}
		if err := f.Truncate(2 * P); err != nil || f.OnDisk() {
			t.Fatalf("Truncate to the threshold: %v, OnDisk %v", err, f.OnDisk())
		}
		if _, err := f.WriteAt([]byte{9}, 2*P); err != nil || !f.OnDisk() {
			t.Fatalf("a write past the threshold: %v, OnDisk %v", err, f.OnDisk())
		}
		checkContents(t, f, image(2*P+1, 0, pat(2*P, 1), 2*P, []byte{9}))
		// Back under the threshold the file stays on disk.
		f.Truncate(10)
		if !f.OnDisk() {
			t.Error("file came back to RAM")
		}
		g := p.NewFile(newAcct())
		defer g.Close()
		if err := g.Truncate(2*P + 1); err != nil || !g.OnDisk() {
			t.Fatalf("Truncate past the threshold: %v, OnDisk %v", err, g.OnDisk())
		}
	})
}

func TestClose(t *testing.T) {
	for _, tc := range tierCases {
		t.Run(tc.name, func(t *testing.T) {
			p := newTestPool(t, tc.threshold, 1<<20)
			acct := newAcct()
			f := p.NewFile(acct)
			f.WriteAt(pat(3*PageSize, 1), 0)
			f.PunchHole(PageSize, PageSize)
			f.Allocate(0, 6*PageSize, true)
			if tc.spill {
				forceSpill(t, f)
			}
			if acct.Balance() != 6*PageSize {
				t.Fatalf("charged %d", acct.Balance())
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			if acct.Balance() != 0 || f.Allocated() != 0 {
				t.Errorf("after Close: charged %d, Allocated %d", acct.Balance(), f.Allocated())
			}
			if err := f.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
			if _, err := f.ReadAt(make([]byte, 1), 0); err != ErrClosed {
				t.Errorf("ReadAt: %v", err)
			}
			if _, err := f.WriteAt([]byte{1}, 0); err != ErrClosed {
				t.Errorf("WriteAt: %v", err)
			}
			if err := f.Truncate(0); err != ErrClosed {
				t.Errorf("Truncate: %v", err)
			}
			if err := f.PunchHole(0, 1); err != ErrClosed {
				t.Errorf("PunchHole: %v", err)
			}
			if err := f.Allocate(0, 1, false); err != ErrClosed {
				t.Errorf("Allocate: %v", err)
			}
			if _, err := f.SeekData(0); err != ErrClosed {
				t.Errorf("SeekData: %v", err)
			}
			if _, err := f.SeekHole(0); err != ErrClosed {
				t.Errorf("SeekHole: %v", err)
			}
			if acct.Balance() != 0 {
				t.Errorf("charged %d", acct.Balance())
			}
			if st := p.Stats(); st.RAMBytes != 0 || st.DiskBytes != 0 || st.Files != 0 || st.DiskFiles != 0 {
				t.Errorf("Stats = %+v", st)
			}
			acct.check(t)
		})
	}
}

// setAccounter moves the file's charge from its accounter to acct, failing
// (and changing nothing) if acct refuses it. Nothing outside the tests
// moves a file between accounters; this checks that the accounter is the
// one the File charges and credits from then on.
func (f *File) setAccounter(acct Accounter) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := acct.Reserve(f.allocated); err != nil {
		return err
	}
	f.acct.Release(f.allocated)
	f.acct = acct
	return nil
}

func TestSetAccounter(t *testing.T) {
	for _, tc := range tierCases {
		t.Run(tc.name, func(t *testing.T) {
			p := newTestPool(t, tc.threshold, 1<<20)
			a, b := newAcct(), newAcct()
			f := p.NewFile(a)
			f.WriteAt(pat(2*PageSize, 1), 0)
			if tc.spill {
				forceSpill(t, f)
			}
			b.setRefuse(true)
			if err := f.setAccounter(b); !errors.Is(err, errRefused) {
				t.Fatalf("setAccounter to a refusing accounter: %v", err)
			}
			if a.Balance() != 2*PageSize || b.Balance() != 0 {
				t.Fatalf("balances %d, %d", a.Balance(), b.Balance())
			}
			b.setRefuse(false)
			if err := f.setAccounter(b); err != nil {
				t.Fatal(err)
			}
			if a.Balance() != 0 || b.Balance() != 2*PageSize {
				t.Fatalf("balances %d, %d", a.Balance(), b.Balance())
			}
			f.WriteAt([]byte{1}, 5*PageSize)
			f.Close()
			if a.Balance() != 0 || b.Balance() != 0 {
				t.Fatalf("after Close balances %d, %d", a.Balance(), b.Balance())
			}
			a.check(t)
			b.check(t)
		})
	}
}

func TestStats(t *testing.T) {
	const P = PageSize
	p := newTestPool(t, 4*P, 1<<20)
	want := Stats{}
	check := func(step string) {
		t.Helper()
		if got := p.Stats(); got != want {
			t.Fatalf("%s: Stats = %+v, want %+v", step, got, want)
		}
	}
	check("new pool")
	a := p.NewFile(newAcct())
	b := p.NewFile(newAcct())
	want.Files = 2
	check("two files")
	a.WriteAt(pat(3*P, 1), 0)
	b.WriteAt([]byte{1}, 2*P)
	want.RAMBytes = 4 * P
	check("written in RAM")
	a.WriteAt(pat(P, 2), 4*P) // crosses the threshold
	want.RAMBytes, want.DiskBytes, want.Spills, want.DiskFiles = P, 4*P, 1, 1
	check("a spilled")
	a.PunchHole(0, 2*P)
	want.DiskBytes = 2 * P
	check("punched on disk")
	a.Truncate(P / 2)
	want.DiskBytes = 0
	check("truncated on disk")
	a.Allocate(0, 3*P, true)
	want.DiskBytes = 3 * P
	check("allocated on disk")
	b.Truncate(5 * P)
	want.RAMBytes, want.DiskBytes, want.Spills, want.DiskFiles = 0, 4*P, 2, 2
	check("b spilled by truncate")
	c := p.NewFile(newAcct())
	c.Allocate(0, 2*P, false)
	want.RAMBytes, want.Files = 2*P, 3
	check("c allocated in RAM")
	a.Close()
	want.DiskBytes, want.Files, want.DiskFiles = P, 2, 1
	check("a closed")
	c.Close()
	want.RAMBytes, want.Files = 0, 1
	check("c closed")
	b.Close()
	want.DiskBytes, want.Files, want.DiskFiles = 0, 0, 0
	check("b closed")
}

func TestPoolDir(t *testing.T) {
	parent := t.TempDir()
	p, err := NewPool(Config{Dir: parent, Threshold: 0, RAMBudget: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	dir := p.Dir()
	if filepath.Dir(dir) != parent {
		t.Errorf("private directory %s is not in %s", dir, parent)
	}
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !st.IsDir() || st.Mode().Perm() != 0o700 {
		t.Errorf("private directory mode %v, want drwx------", st.Mode())
	}
	var files []*File
	for i := range 5 {
		f := p.NewFile(newAcct())
		f.WriteAt(pat(10000, byte(i)), int64(i)*PageSize)
		if !f.OnDisk() {
			t.Fatal("file not spilled")
		}
		files = append(files, f)
	}
	checkEmptyDir(t, p)
	if err := p.Close(); err != nil {
		t.Fatalf("Pool.Close with spilled files open: %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("private directory still there after Close: %v", err)
	}
	// Close frees every file it still held: their data is gone, their
	// accounters are credited, and a later Close of a file is harmless.
	for _, f := range files {
		if _, err := f.ReadAt(make([]byte, 1), 0); !errors.Is(err, ErrClosed) {
			t.Errorf("ReadAt after Pool.Close: %v, want ErrClosed", err)
		}
		if err := f.Close(); err != nil {
			t.Error(err)
		}
	}
	if st := p.Stats(); st.Files != 0 || st.DiskFiles != 0 || st.DiskBytes != 0 || st.RAMBytes != 0 {
		t.Errorf("stats after Pool.Close: %+v, want all zero", st)
	}
	if entries, _ := os.ReadDir(parent); len(entries) != 0 {
		t.Errorf("spill directory holds %d names after Close", len(entries))
	}
}

func TestNewPool(t *testing.T) {
	for _, tc := range []struct {
		cfg     Config
		invalid bool // the error is ErrInvalid
	}{
		{Config{Dir: t.TempDir(), Threshold: -1}, true},
		{Config{Dir: t.TempDir(), RAMBudget: -1}, true},
		{Config{Dir: filepath.Join(t.TempDir(), "missing")}, false},
	} {
		p, err := NewPool(tc.cfg)
		if err == nil {
			p.Close()
			t.Errorf("NewPool(%+v) succeeded", tc.cfg)
		} else if errors.Is(err, ErrInvalid) != tc.invalid {
			t.Errorf("NewPool(%+v): %v; ErrInvalid: %v, want %v", tc.cfg, err, !tc.invalid, tc.invalid)
		}
	}
	p := newTestPool(t, 123, 456)
	if p.Threshold() != 123 || p.RAMBudget() != 456 {
		t.Errorf("Threshold %d, RAMBudget %d", p.Threshold(), p.RAMBudget())
	}
}

// TestSweepDeadDirs checks that NewPool removes the empty private
// directories of our dead processes, as Config.ProcessAlive tells them,
// and nothing else; with no ProcessAlive, nothing.
func TestSweepDeadDirs(t *testing.T) {
	parent := t.TempDir()
	const deadPID = 1 << 30 // above any pid_max
	mk := func(name string, withFile bool) string {
		d := filepath.Join(parent, name)
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if withFile {
			os.WriteFile(filepath.Join(d, "keep"), nil, 0o600)
		}
		return d
	}
	dead := mk("spoolfs-"+strconv.Itoa(deadPID)+"-1", false)
	deadFull := mk("spoolfs-"+strconv.Itoa(deadPID)+"-2", true)
	mine := mk("spoolfs-"+strconv.Itoa(os.Getpid())+"-3", false)
	other := mk("other-"+strconv.Itoa(deadPID), false)
	// Not a directory of a dead pool: a symlink to an empty directory.
	target := t.TempDir()
	link := filepath.Join(parent, "spoolfs-"+strconv.Itoa(deadPID)+"-4")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	kept := []string{deadFull, mine, other, link, target}
	if os.Geteuid() == 0 {
		// Another user's: its PID may be of another PID namespace.
		theirs := mk("spoolfs-"+strconv.Itoa(deadPID)+"-5", false)
		if err := os.Chown(theirs, 1000, 1000); err != nil {
			t.Fatal(err)
		}
		kept = append(kept, theirs)
	}
	p, err := NewPool(Config{Dir: parent})
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	if _, err := os.Stat(dead); err != nil {
		t.Errorf("with no ProcessAlive, a leftover directory was removed: %v", err)
	}
	alive := func(pid int) bool { return pid != deadPID }
	p, err = NewPool(Config{Dir: parent, ProcessAlive: alive})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Error("empty directory of a dead process kept")
	}
	for _, d := range kept {
		if _, err := os.Lstat(d); err != nil {
			t.Errorf("%s removed", filepath.Base(d))
		}
	}
}

// TestRAMBudget drives many files through a small budget and checks that
// RAM held never passes it and that the figures add up.
func TestRAMBudget(t *testing.T) {
	const budget = 64 << 10
	p := newTestPool(t, 32<<10, budget)
	acct := newAcct()
	var files []*File
	for i := range 40 {
		f := p.NewFile(acct)
		files = append(files, f)
		for j := range 6 {
			off := int64((i*5 + j*3) % 8 * PageSize)
			if _, err := f.WriteAt(pat(PageSize+100*j, byte(i+j)), off); err != nil {
				t.Fatal(err)
			}
			checkPool(t, p, files)
		}
		if i%3 == 0 {
			files[i/2].Truncate(0)
			checkPool(t, p, files)
		}
	}
	if p.Stats().Spills == 0 {
		t.Error("nothing spilled")
	}
	for _, f := range files {
		f.Close()
	}
	if acct.Balance() != 0 {
		t.Errorf("charged %d after closing every file", acct.Balance())
	}
	acct.check(t)
}

// checkPool checks the pool's figures against its files. Only for use when
// no operation runs concurrently.
func checkPool(t testing.TB, p *Pool, files []*File) {
	t.Helper()
	var want Stats
	for _, f := range files {
		f.mu.RLock()
		closed, inRAM, alloc, size := f.closed, f.inRAMLocked(), f.allocated, f.size
		f.mu.RUnlock()
		if closed {
			continue
		}
		want.Files++
		if inRAM {
			want.RAMBytes += alloc
			if size > p.Threshold() {
				t.Fatalf("file of size %d in RAM, threshold %d", size, p.Threshold())
			}
		} else {
			want.DiskBytes += alloc
			want.DiskFiles++
			if dedicatedOf(f) != nil {
				want.Dedicated++
			}
		}
	}
	got := p.Stats()
	want.Spills = got.Spills
	// Dedicated files closed are counted until the reclaimer has closed
	// them; never more than the budget.
	if got.Dedicated < want.Dedicated || got.Dedicated > p.maxDedicated {
		t.Fatalf("%d dedicated spill files open, %d in use, budget %d", got.Dedicated, want.Dedicated, p.maxDedicated)
	}
	want.Dedicated = got.Dedicated
	if got != want {
		t.Fatalf("Stats = %+v, files say %+v", got, want)
	}
	if got.RAMBytes > p.RAMBudget() {
		t.Fatalf("RAMBytes %d over the budget %d", got.RAMBytes, p.RAMBudget())
	}
	p.mu.Lock()
	lruLen := p.lru.Len()
	p.mu.Unlock()
	if int64(lruLen) != want.Files-want.DiskFiles {
		t.Fatalf("LRU holds %d files, %d are in RAM", lruLen, want.Files-want.DiskFiles)
	}
}

// TestHoldRAM: RAM held outside files counts toward the budget: it evicts
// colder files to disk, is refused with ErrNoRAM (holding nothing) when
// nothing is left to evict, and a file that then needs RAM spills itself.
func TestHoldRAM(t *testing.T) {
	const budget = 64 << 10
	p := newTestPool(t, 32<<10, budget)
	acct := newAcct()
	cold := p.NewFile(acct)
	defer cold.Close()
	data := pat(32<<10, 1)
	if _, err := cold.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	if err := p.HoldRAM(48 << 10); err != nil {
		t.Fatalf("HoldRAM with a file to evict: %v", err)
	}
	if !cold.OnDisk() {
		t.Error("the cold file stayed in RAM: the budget was overcommitted")
	}
	if got := p.Stats().RAMBytes; got != 48<<10 {
		t.Errorf("RAMBytes %d after holding 48 KiB, want %d", got, 48<<10)
	}
	if err := p.HoldRAM(32 << 10); !errors.Is(err, ErrNoRAM) {
		t.Errorf("HoldRAM past a budget with nothing to evict: %v, want ErrNoRAM", err)
	}
	if got := p.Stats().RAMBytes; got != 48<<10 {
		t.Errorf("a refused HoldRAM changed RAMBytes to %d", got)
	}
	if err := p.HoldRAM(-1); !errors.Is(err, ErrInvalid) {
		t.Errorf("HoldRAM of a negative amount: %v, want ErrInvalid", err)
	}
	// A file that needs more RAM than is left goes to disk, as when other
	// files fill the budget.
	hot := p.NewFile(acct)
	defer hot.Close()
	if _, err := hot.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	if !hot.OnDisk() {
		t.Error("a file that does not fit beside held RAM stayed in RAM")
	}
	got := make([]byte, len(data))
	for _, f := range []*File{cold, hot} {
		if _, err := f.ReadAt(got, 0); err != nil || !bytes.Equal(got, data) {
			t.Errorf("reading a spilled file back: %v", err)
		}
	}
	// Releasing more than is held frees only what is held: not the pages
	// of files.
	small := p.NewFile(acct)
	defer small.Close()
	if _, err := small.WriteAt(pat(PageSize, 2), 0); err != nil {
		t.Fatal(err)
	}
	p.ReleaseRAM(1 << 20)
	if got := p.Stats().RAMBytes; got != PageSize || small.OnDisk() {
		t.Errorf("RAMBytes %d after releasing every held byte with a page in RAM", got)
	}
	acct.check(t)
}

// TestLRU checks that the least recently used RAM file is the one spilled
// to make room.
func TestLRU(t *testing.T) {
	const P = PageSize
	setup := func(t *testing.T) (p *Pool, a, b, c *File) {
		p = newTestPool(t, 1<<20, 16*P)
		a, b, c = p.NewFile(newAcct()), p.NewFile(newAcct()), p.NewFile(newAcct())
		t.Cleanup(func() { a.Close(); b.Close(); c.Close() })
		return
	}
	t.Run("read", func(t *testing.T) {
		p, a, b, c := setup(t)
		a.WriteAt(pat(5*P, 1), 0)
		b.WriteAt(pat(5*P, 2), 0)
		a.ReadAt(make([]byte, 10), 0) // a is now more recent than b
		if _, err := c.WriteAt(pat(8*P, 3), 0); err != nil {
			t.Fatal(err)
		}
		if a.OnDisk() || !b.OnDisk() || c.OnDisk() {
			t.Errorf("on disk: a %v, b %v, c %v; want b only", a.OnDisk(), b.OnDisk(), c.OnDisk())
		}
		checkPool(t, p, []*File{a, b, c})
	})
	t.Run("write", func(t *testing.T) {
		p, a, b, c := setup(t)
		b.WriteAt(pat(5*P, 2), 0)
		a.WriteAt(pat(5*P, 1), 0) // a is now more recent than b
		if _, err := c.WriteAt(pat(8*P, 3), 0); err != nil {
			t.Fatal(err)
		}
		if a.OnDisk() || !b.OnDisk() || c.OnDisk() {
			t.Errorf("on disk: a %v, b %v, c %v; want b only", a.OnDisk(), b.OnDisk(), c.OnDisk())
		}
		checkPool(t, p, []*File{a, b, c})
	})
	t.Run("evicts only what it must", func(t *testing.T) {
		p, a, b, c := setup(t)
		a.WriteAt(pat(5*P, 1), 0)
		b.WriteAt(pat(5*P, 2), 0)
		c.WriteAt(pat(5*P, 3), 0)
		// 15 of 16 pages used; two more pages need one file to go: a.
		if _, err := c.WriteAt(pat(2*P, 4), 5*P); err != nil {
			t.Fatal(err)
		}
		if !a.OnDisk() || b.OnDisk() || c.OnDisk() {
			t.Errorf("on disk: a %v, b %v, c %v; want a only", a.OnDisk(), b.OnDisk(), c.OnDisk())
		}
		checkPool(t, p, []*File{a, b, c})
	})
	t.Run("a write larger than the budget spills only its file", func(t *testing.T) {
		p, a, b, c := setup(t)
		a.WriteAt(pat(4*P, 1), 0)
		b.WriteAt(pat(4*P, 2), 0)
		if _, err := c.WriteAt(pat(17*P, 3), 0); err != nil {
			t.Fatal(err)
		}
		if a.OnDisk() || b.OnDisk() || !c.OnDisk() {
			t.Errorf("on disk: a %v, b %v, c %v; want c only", a.OnDisk(), b.OnDisk(), c.OnDisk())
		}
		if st := p.Stats(); st.Spills != 1 {
			t.Errorf("Spills = %d, want 1", st.Spills)
		}
		checkPool(t, p, []*File{a, b, c})
	})
	t.Run("a file that cannot fit beside itself spills only itself", func(t *testing.T) {
		p, a, b, c := setup(t)
		a.WriteAt(pat(2*P, 1), 0)
		b.WriteAt(pat(2*P, 2), 0)
		c.WriteAt(pat(10*P, 3), 0)
		if _, err := c.WriteAt(pat(7*P, 4), 10*P); err != nil {
			t.Fatal(err)
		}
		if a.OnDisk() || b.OnDisk() || !c.OnDisk() {
			t.Errorf("on disk: a %v, b %v, c %v; want c only", a.OnDisk(), b.OnDisk(), c.OnDisk())
		}
		checkPool(t, p, []*File{a, b, c})
	})
	t.Run("zero budget", func(t *testing.T) {
		p := newTestPool(t, 1<<20, 0)
		f := p.NewFile(newAcct())
		defer f.Close()
		f.WriteAt([]byte{1}, 0)
		if !f.OnDisk() {
			t.Error("file in RAM with a zero budget")
		}
		checkPool(t, p, []*File{f})
	})
}

// TestHugeSparseFile seeks through terabyte holes on disk, which must not
// take a step per page.
func TestHugeSparseFile(t *testing.T) {
	const P = PageSize
	p := newTestPool(t, 0, 0)
	acct := newAcct()
	f := p.NewFile(acct)
	defer f.Close()
	const a, b = int64(1) << 36, int64(1) << 42
	f.WriteAt(pat(2*P, 1), a)
	f.WriteAt([]byte("end"), b)
	size := b + 3
	for _, s := range []seekWant{
		{true, 0, a}, {true, a + 5, a + 5}, {true, a + 2*P, b}, {true, b + 2, b + 2},
		{false, 0, 0}, {false, a, a + 2*P}, {false, a + 2*P + 1, a + 2*P + 1}, {false, b, size},
		{true, size, -1}, {false, size, -1},
	} {
		seek := f.SeekHole
		if s.data {
			seek = f.SeekData
		}
		got, err := seek(s.off)
		if s.want < 0 && err != ErrNoData || s.want >= 0 && (got != s.want || err != nil) {
			t.Errorf("seek(data %v, %d) = %d, %v; want %d", s.data, s.off, got, err, s.want)
		}
	}
	if f.Allocated() != 3*P || acct.Balance() != 3*P {
		t.Errorf("Allocated %d, charged %d", f.Allocated(), acct.Balance())
	}
	if err := f.Truncate(a + 10); err != nil {
		t.Fatal(err)
	}
	if _, err := f.SeekData(a + 10); err != ErrNoData {
		t.Errorf("SeekData at the new end: %v", err)
	}
	if got, _ := f.SeekHole(a); got != a+10 {
		t.Errorf("SeekHole after truncate = %d", got)
	}
	if f.Allocated() != P || acct.Balance() != P {
		t.Errorf("after truncate: Allocated %d, charged %d", f.Allocated(), acct.Balance())
	}
}

// TestPageSet checks pageSet against a map of pages, around word edges and
// far apart.
func TestPageSet(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	var s pageSet
	want := map[int64]bool{}
	pick := func() int64 {
		switch r.IntN(3) {
		case 0:
			return r.Int64N(300)
		case 1:
			return r.Int64N(8)*64 + r.Int64N(3) - 1 + 64 // a word edge
		default:
			return 1<<30 + r.Int64N(200)
		}
	}
	for range 3000 {
		first := pick()
		last := first + r.Int64N(130)
		switch r.IntN(4) {
		case 0, 1:
			n := int64(0)
			for pg := first; pg <= last; pg++ {
				if !want[pg] {
					n++
				}
				want[pg] = true
			}
			if missing := s.countMissing(first, last); missing != n {
				t.Fatalf("countMissing(%d, %d) = %d, want %d", first, last, missing, n)
			}
			if got := s.setRange(first, last); got != n {
				t.Fatalf("setRange(%d, %d) = %d, want %d", first, last, got, n)
			}
		case 2:
			if r.IntN(4) == 0 {
				last = first + r.Int64N(1<<40) // far more pages than are set
			}
			n := int64(0)
			for pg := range want {
				if pg >= first && pg <= last {
					n++
					delete(want, pg)
				}
			}
			if got := s.clearRange(first, last); got != n {
				t.Fatalf("clearRange(%d, %d) = %d, want %d", first, last, got, n)
			}
		case 3:
			if r.IntN(4) != 0 {
				continue // clearFrom empties too much to do it often
			}
			n := int64(0)
			for pg := range want {
				if pg >= first {
					n++
					delete(want, pg)
				}
			}
			if got := s.clearFrom(first); got != n {
				t.Fatalf("clearFrom(%d) = %d, want %d", first, got, n)
			}
		}
		if s.count != int64(len(want)) {
			t.Fatalf("count %d, want %d", s.count, len(want))
		}
		for w, word := range s.words {
			if word == 0 {
				t.Fatalf("empty word %d kept", w)
			}
		}
		for range 5 {
			pg := pick()
			if s.has(pg) != want[pg] {
				t.Fatalf("has(%d) = %v", pg, s.has(pg))
			}
			wantSet, wantFound := int64(0), false
			for q := range want {
				if q >= pg && (!wantFound || q < wantSet) {
					wantSet, wantFound = q, true
				}
			}
			if got, found := s.nextSet(pg); got != wantSet || found != wantFound {
				t.Fatalf("nextSet(%d) = %d, %v; want %d, %v", pg, got, found, wantSet, wantFound)
			}
			wantClear := pg
			for want[wantClear] {
				wantClear++
			}
			if got := s.nextClear(pg); got != wantClear {
				t.Fatalf("nextClear(%d) = %d, want %d", pg, got, wantClear)
			}
			// Ranges short and long, up to far more pages than are set.
			last := pg + r.Int64N(130)
			if r.IntN(2) == 0 {
				last = pg + r.Int64N(1<<40)
			}
			wantMissing := last - pg + 1
			for q := range want {
				if q >= pg && q <= last {
					wantMissing--
				}
			}
			if got := s.countMissing(pg, last); got != wantMissing {
				t.Fatalf("countMissing(%d, %d) = %d, want %d", pg, last, got, wantMissing)
			}
		}
	}
}

// TestHugeRanges: an allocate or a punch over a huge range of a sparse
// spilled file costs what the file holds, not the range: a petabyte (2^38
// pages) is counted, and refused by the accounter, and MaxSize bytes are
// punched, at once instead of after hours with the file locked. Nor does
// the spill disk hear of ranges where nothing is allocated, so its own
// limit on file size does not refuse a punch or a truncate there.
func TestHugeRanges(t *testing.T) {
	const P = PageSize
	eachDiskTier(t, func(t *testing.T, p *Pool) {
		acct := newAcct()
		acct.limit = 1 << 20
		f := p.NewFile(acct)
		defer f.Close()
		data := pat(3*P, 1)
		if _, err := f.WriteAt(data, 1<<40); err != nil {
			t.Fatal(err)
		}
		if err := f.Allocate(0, 1<<50, true); !errors.Is(err, errRefused) {
			t.Fatalf("Allocate of a petabyte: %v, want the accounter's refusal", err)
		}
		if f.Allocated() != 3*P || acct.Balance() != 3*P || f.Size() != 1<<40+3*P {
			t.Errorf("after the refusal: Allocated %d, charged %d, Size %d", f.Allocated(), acct.Balance(), f.Size())
		}
		back := make([]byte, len(data))
		if n, err := f.ReadAt(back, 1<<40); n != len(data) || err != nil || !bytes.Equal(back, data) {
			t.Errorf("read back = %d, %v; contents equal: %v", n, err, bytes.Equal(back, data))
		}
		if err := f.Truncate(MaxSize); err != nil {
			t.Fatal(err)
		}
		if err := f.PunchHole(0, MaxSize); err != nil {
			t.Fatalf("PunchHole of MaxSize bytes: %v", err)
		}
		if n, err := f.ReadAt(back, 1<<40); n != len(data) || err != nil || !bytes.Equal(back, make([]byte, len(data))) {
			t.Errorf("read after the punch = %d, %v; zeros: %v", n, err, bytes.Equal(back, make([]byte, len(data))))
		}
		if f.Allocated() != 0 || acct.Balance() != 0 || p.Stats().DiskBytes != 0 {
			t.Errorf("after the punch: Allocated %d, charged %d, DiskBytes %d", f.Allocated(), acct.Balance(), p.Stats().DiskBytes)
		}
		// Shrinking to a size the spill disk could not hold itself
		// (ext4 stops at 16 TiB): it holds nothing there anyway.
		if _, err := f.WriteAt(data, 1<<40); err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(1 << 50); err != nil || f.Size() != 1<<50 {
			t.Fatalf("Truncate(1<<50) from MaxSize: %v, Size %d", err, f.Size())
		}
		if n, err := f.ReadAt(back, 1<<40); n != len(data) || err != nil || !bytes.Equal(back, data) {
			t.Errorf("read after the truncate = %d, %v; contents equal: %v", n, err, bytes.Equal(back, data))
		}
		acct.check(t)
	})
}

// TestMaxSize: in both disk tiers a file may be MaxSize bytes long and no
// longer, and every operation near that end works: no offset of a page or
// a slot overflows (a sealed file used to panic there). A truncate or an
// allocate past MaxSize, or a write at it, fails with ErrTooLarge; a write
// across it is cut short, as write(2) is at the file size limit. The file
// keeps what it held, and its figures stay true. (A RAM file is never that
// large: it spills past the threshold, which is at most the RAM budget.)
func TestMaxSize(t *testing.T) {
	const P = PageSize
	eachDiskTier(t, func(t *testing.T, p *Pool) {
		acct := newAcct()
		f := p.NewFile(acct)
		defer f.Close()
		head := pat(100, 1)
		if _, err := f.WriteAt(head, 0); err != nil {
			t.Fatal(err)
		}
		for _, size := range []int64{math.MaxInt64, MaxSize + 1} {
			if err := f.Truncate(size); !errors.Is(err, ErrTooLarge) {
				t.Errorf("Truncate(%d): %v, want ErrTooLarge", size, err)
			}
		}
		buf := pat(10, 2)
		if n, err := f.ReadAt(buf, math.MaxInt64-10); n != 0 || err != io.EOF {
			t.Errorf("ReadAt(2^63-11) = %d, %v; want 0, EOF", n, err)
		}
		if err := f.Truncate(MaxSize); err != nil {
			t.Fatalf("Truncate(MaxSize): %v", err)
		}
		if n, err := f.ReadAt(buf, MaxSize-10); n != 10 || err != nil || !bytes.Equal(buf, make([]byte, 10)) {
			t.Errorf("ReadAt the last bytes = %d, %v, %q; want 10 zeros", n, err, buf[:n])
		}
		if n, err := f.ReadAt(buf, MaxSize-5); n != 5 || err != io.EOF {
			t.Errorf("ReadAt across the end = %d, %v; want 5, EOF", n, err)
		}
		if err := f.Allocate(MaxSize-P, 2*P, true); !errors.Is(err, ErrTooLarge) {
			t.Errorf("Allocate past MaxSize: %v, want ErrTooLarge", err)
		}
		if n, err := f.WriteAt([]byte("x"), MaxSize); n != 0 || !errors.Is(err, ErrTooLarge) {
			t.Errorf("WriteAt(MaxSize) = %d, %v; want 0, ErrTooLarge", n, err)
		}
		if got, err := f.SeekData(MaxSize - 10); err != ErrNoData {
			t.Errorf("SeekData near the end = %d, %v; want ErrNoData", got, err)
		}
		if got, err := f.SeekHole(MaxSize - 10); got != MaxSize-10 || err != nil {
			t.Errorf("SeekHole near the end = %d, %v", got, err)
		}
		// Pages at the end: the spill disk may refuse them (ext4 stops
		// at 16 TiB) with EFBIG; tmpfs, xfs and btrfs take them.
		n, err := f.WriteAt([]byte("0123456789"), MaxSize-5)
		onDisk := n == 5 && errors.Is(err, ErrTooLarge)
		if !onDisk && (n != 0 || !errors.Is(err, syscall.EFBIG)) {
			t.Fatalf("WriteAt across MaxSize = %d, %v; want 5, ErrTooLarge (or 0, EFBIG from the spill disk)", n, err)
		}
		if onDisk {
			if n, err := f.ReadAt(buf[:5], MaxSize-5); n != 5 || err != nil || string(buf[:5]) != "01234" {
				t.Errorf("read back at the end = %d, %v, %q", n, err, buf[:5])
			}
			if err := f.Allocate(MaxSize-3*P, P, false); err != nil {
				t.Errorf("Allocate near the end: %v", err)
			}
			if err := f.PunchHole(MaxSize-P, P); err != nil {
				t.Errorf("PunchHole of the last page: %v", err)
			}
		}
		wantPages := int64(1)
		if onDisk {
			wantPages = 2 // the last page went with the punch
		}
		if f.Size() != MaxSize || f.Allocated() != wantPages*P || acct.Balance() != wantPages*P {
			t.Errorf("Size %d, Allocated %d, charged %d; want %d, %d, %d", f.Size(), f.Allocated(), acct.Balance(), int64(MaxSize), wantPages*P, wantPages*P)
		}
		if err := f.Truncate(100); err != nil {
			t.Fatal(err)
		}
		checkContents(t, f, head)
		acct.check(t)
	})
}

// eachDiskTier runs fn, as a subtest, on a new pool whose files spill at
// their first byte: in the clear, then sealed.
func eachDiskTier(t *testing.T, fn func(t *testing.T, p *Pool)) {
	for _, encrypt := range []bool{false, true} {
		t.Run(fmt.Sprintf("encrypt=%v", encrypt), func(t *testing.T) {
			newPool := newTestPool
			if encrypt {
				newPool = newSealedPool
			}
			fn(t, newPool(t, 0, 1<<20))
		})
	}
}
