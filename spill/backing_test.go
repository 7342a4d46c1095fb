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
	plain := newTestPool(t, 0, 1<<20).NewFile(nopAcct{})
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
// sees every size change at once, the holes included.
func TestPinnedBackingFollowsTheSize(t *testing.T) {
	f := newTestPool(t, 0, 1<<20).NewFile(nopAcct{})
	mustWrite(t, f, bytes.Repeat([]byte{7}, 3*PageSize), 0)
	if err := f.Truncate(10 * PageSize); err != nil { // a hole the disk need not know of
		t.Fatal(err)
	}
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
