package spill

import (
	"errors"
	"testing"
)

// TestSetRAMBudgetEvictsColdest: lowering the budget below what files
// hold moves files to disk, the least recently used first, until what is
// held fits; their bytes are unchanged and the figures add up.
func TestSetRAMBudgetEvictsColdest(t *testing.T) {
	const fileSize = 16 << 10
	p := newTestPool(t, 64<<10, 1<<20)
	var files []*File
	var want [][]byte
	for i := range 8 {
		f := p.NewFile(nopAcct{})
		data := pat(fileSize, byte(i))
		if _, err := f.WriteAt(data, 0); err != nil {
			t.Fatal(err)
		}
		files, want = append(files, f), append(want, data)
	}
	// Reading the first two makes them the warmest.
	readAll(t, files[0])
	readAll(t, files[1])
	if err := p.SetRAMBudget(3 * fileSize); err != nil {
		t.Fatalf("SetRAMBudget: %v", err)
	}
	if got := p.RAMBudget(); got != 3*fileSize {
		t.Fatalf("RAMBudget %d after SetRAMBudget(%d)", got, 3*fileSize)
	}
	if st := p.Stats(); st.RAMBytes > 3*fileSize || st.DiskFiles != 5 {
		t.Fatalf("after lowering the budget: %+v, want at most %d bytes in RAM, 5 files on disk", st, 3*fileSize)
	}
	// The warmest (0, 1, and 7, written last) stay; 2 to 6 went.
	for i, f := range files {
		if wantDisk := i >= 2 && i <= 6; f.OnDisk() != wantDisk {
			t.Errorf("file %d on disk: %v, want %v", i, f.OnDisk(), wantDisk)
		}
		checkContents(t, f, want[i])
	}
	checkPool(t, p, files)
	// New writes keep within the lower budget.
	f := p.NewFile(nopAcct{})
	files = append(files, f)
	if _, err := f.WriteAt(pat(2*fileSize, 9), 0); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.RAMBytes > 3*fileSize {
		t.Fatalf("RAM %d past the lowered budget %d", st.RAMBytes, 3*fileSize)
	}
	checkPool(t, p, files)
}

// TestSetRAMBudgetRefused: RAM that cannot move to disk (HoldRAM) keeps
// the budget from going below it; the refusal leaves the old budget.
func TestSetRAMBudgetRefused(t *testing.T) {
	p := newTestPool(t, 64<<10, 1<<20)
	f := p.NewFile(nopAcct{})
	if _, err := f.WriteAt(pat(8<<10, 1), 0); err != nil {
		t.Fatal(err)
	}
	if err := p.HoldRAM(32 << 10); err != nil {
		t.Fatal(err)
	}
	if err := p.SetRAMBudget(16 << 10); !errors.Is(err, ErrNoRAM) {
		t.Fatalf("SetRAMBudget below what is held: %v, want ErrNoRAM", err)
	}
	if got := p.RAMBudget(); got != 1<<20 {
		t.Fatalf("refused SetRAMBudget left the budget at %d", got)
	}
	if err := p.SetRAMBudget(-1); !errors.Is(err, ErrInvalid) {
		t.Fatalf("SetRAMBudget(-1): %v, want ErrInvalid", err)
	}
	checkContents(t, f, pat(8<<10, 1))
	p.ReleaseRAM(32 << 10)
	checkPool(t, p, []*File{f})
}

// TestSetThreshold: lowering the threshold moves the RAM files past it to
// disk (a RAM file never outgrows the threshold), and later writes obey it.
func TestSetThreshold(t *testing.T) {
	p := newTestPool(t, 64<<10, 1<<20)
	small, large := p.NewFile(nopAcct{}), p.NewFile(nopAcct{})
	if _, err := small.WriteAt(pat(4<<10, 1), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := large.WriteAt(pat(40<<10, 2), 0); err != nil {
		t.Fatal(err)
	}
	if err := p.SetThreshold(16 << 10); err != nil {
		t.Fatalf("SetThreshold: %v", err)
	}
	if small.OnDisk() || !large.OnDisk() {
		t.Fatalf("after SetThreshold(16K): small on disk %v, large on disk %v; want false, true", small.OnDisk(), large.OnDisk())
	}
	checkContents(t, large, pat(40<<10, 2))
	if _, err := small.WriteAt(pat(20<<10, 3), 0); err != nil {
		t.Fatal(err)
	}
	if !small.OnDisk() {
		t.Fatal("a file grown past the new threshold stayed in RAM")
	}
	checkPool(t, p, []*File{small, large})
}
