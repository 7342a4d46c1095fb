package spill

import (
	"bytes"
	"io"
	"testing"
)

// backingLength is the length of a pinned file's backing file.
func backingLength(t *testing.T, f *File) int64 {
	t.Helper()
	b, _, ok := f.PinBacking()
	if !ok {
		t.Fatal("PinBacking of a pinned file: not ok")
	}
	info, err := b.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return info.Size()
}

func TestPinBackingOnlyPlainSpilledFiles(t *testing.T) {
	ram := newTestPool(t, 1<<20, 1<<20).NewFile(nopAcct{})
	mustWrite(t, ram, []byte("small"), 0)
	if _, _, ok := ram.PinBacking(); ok {
		t.Error("a RAM file pinned a backing file")
	}
	sealed := newSealedPool(t, 0, 1<<20).NewFile(nopAcct{})
	mustWrite(t, sealed, []byte("secret"), 0)
	if _, _, ok := sealed.PinBacking(); ok {
		t.Error("a sealed file pinned its backing file, which holds ciphertext")
	}
	small := newTestPool(t, 0, 1<<20).NewFile(nopAcct{})
	mustWrite(t, small, []byte("small"), 0)
	if _, _, ok := small.PinBacking(); ok {
		t.Error("a small spilled file, whose pages are in the shared files, pinned one")
	}
	plain := newDedicatingPool(t).NewFile(nopAcct{})
	mustWrite(t, plain, []byte("plain"), 0)
	b, unpin, ok := plain.PinBacking()
	if !ok {
		t.Fatal("a spilled plain file did not pin")
	}
	got, err := io.ReadAll(io.NewSectionReader(b, 0, 1<<20))
	if err != nil || string(got) != "plain" {
		t.Errorf("backing file reads %q, %v; want \"plain\"", got, err)
	}
	unpin()
	unpin() // a second call changes nothing
	if plain.pins != 0 {
		t.Errorf("pins = %d after unpin twice, want 0", plain.pins)
	}
	plain.Close()
	if _, _, ok := plain.PinBacking(); ok {
		t.Error("a closed file pinned")
	}
}

// While pinned, the backing file is as long as the file: a reader of it
// sees every size change at once.
func TestPinnedBackingFollowsTheSize(t *testing.T) {
	f := newDedicatingPool(t).NewFile(nopAcct{})
	mustWrite(t, f, bytes.Repeat([]byte{7}, 3*PageSize), 0)
	_, unpin, ok := f.PinBacking()
	if !ok {
		t.Fatal("not pinned")
	}
	defer unpin()
	for _, size := range []int64{10 * PageSize, 20*PageSize + 5, 6 * PageSize, PageSize + 1, 0} {
		if err := f.Truncate(size); err != nil {
			t.Fatal(err)
		}
		if got := backingLength(t, f); got != size {
			t.Errorf("after Truncate(%d) the backing file is %d bytes", size, got)
		}
	}
}

// A file with a hole below its size is not pinned; a pinned one stays
// dense, every page below the size charged: a shared mapping of its
// backing file has nothing to allocate behind the accounts' back.
func TestPinnedFileStaysDense(t *testing.T) {
	p := newDedicatingPool(t)
	sparse := p.NewFile(nopAcct{})
	mustWrite(t, sparse, []byte("x"), 5*PageSize)
	if _, _, ok := sparse.PinBacking(); ok {
		t.Error("a file with holes was pinned")
	}

	acct := newAcct()
	f := p.NewFile(acct)
	mustWrite(t, f, bytes.Repeat([]byte{1}, 2*PageSize), 0)
	_, unpin, ok := f.PinBacking()
	if !ok {
		t.Fatal("a dense file was not pinned")
	}
	dense := func(what string) {
		t.Helper()
		if size := f.Size(); size > 0 && f.tier.missing(0, size) != 0 {
			t.Errorf("after %s: holes below the size %d", what, size)
		}
		if got, want := acct.balance, f.Allocated(); got != want {
			t.Errorf("after %s: %d bytes charged, %d allocated", what, got, want)
		}
	}
	mustWrite(t, f, []byte("far"), 10*PageSize) // past the end
	dense("a write past the end")
	if err := f.Truncate(20 * PageSize); err != nil {
		t.Fatal(err)
	}
	dense("a truncate that grows")
	if err := f.Allocate(30*PageSize, PageSize, false); err != nil {
		t.Fatal(err)
	}
	dense("an allocate past the end")
	if err := f.PunchHole(PageSize/2, 4*PageSize); err != nil {
		t.Fatal(err)
	}
	dense("a punch")
	got := make([]byte, 5*PageSize)
	if _, err := f.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[:PageSize/2], bytes.Repeat([]byte{1}, PageSize/2)) || !bytes.Equal(got[PageSize/2:], make([]byte, len(got)-PageSize/2)) {
		t.Error("a punch of a pinned file does not read back as zeros")
	}
	// Growing past what the accounts allow fails, and changes nothing.
	acct.limit = acct.balance
	size := f.Size()
	if err := f.Truncate(size + 10*PageSize); err == nil {
		t.Error("a truncate that grows past the limit succeeded")
	}
	if n, err := f.WriteAt([]byte("y"), size+10*PageSize); err == nil || n != 0 {
		t.Errorf("a write past the end and the limit: %d, %v", n, err)
	}
	if f.Size() != size {
		t.Errorf("refused calls changed the size from %d to %d", size, f.Size())
	}
	dense("refused calls")
	unpin()
	if err := f.PunchHole(0, PageSize); err != nil {
		t.Fatal(err)
	}
	if f.tier.missing(0, PageSize) != 1 {
		t.Error("unpinned, a punch frees the page again: want a hole")
	}
}

// A file whose backing file holds pages preallocated past its end is not
// pinned: cutting them off would free what the accounts still count.
func TestPinBackingRefusesPreallocatedTail(t *testing.T) {
	p := newTestPool(t, 1<<20, 1<<20)
	f := p.NewFile(nopAcct{})
	mustWrite(t, f, []byte("x"), 0)
	if err := f.Allocate(0, 4*PageSize, true); err != nil {
		t.Fatal(err)
	}
	if err := p.SetThreshold(0); err != nil { // spills f, preallocated pages and all
		t.Fatal(err)
	}
	if !f.OnDisk() {
		t.Fatal("not spilled")
	}
	if _, _, ok := f.PinBacking(); ok {
		t.Error("pinned a file whose backing file is longer than it")
	}
}

func mustWrite(t *testing.T, f *File, p []byte, off int64) {
	t.Helper()
	if n, err := f.WriteAt(p, off); err != nil || n != len(p) {
		t.Fatalf("WriteAt(%d bytes at %d) = %d, %v", len(p), off, n, err)
	}
}

// newDedicatingPool is a pool that spills every byte and gives each file a
// spill file of its own from its first page, as it does in production
// once a file reaches dedicatedMin: only such files have a backing file to
// pin.
func newDedicatingPool(t *testing.T) *Pool {
	p := newTestPool(t, 0, 1<<20)
	p.dedicatedMin = 1
	return p
}
