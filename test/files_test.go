package test

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spoolfs/spoolfs/quota"
)

// sizeThreshold is the spill threshold of the round-trip mounts: small
// enough that files on either side of it are quick to write.
const sizeThreshold = 8 << 20

// TestRoundTripSizes writes files of sizes around the page size and the
// spill threshold and reads them back, as spoolfs holds them, checking
// their SHA-256, size, st_blocks and the tier each one landed in.
func TestRoundTripSizes(t *testing.T) {
	sizes := []int64{0, 1, 4095, 4096, 4097, 1 << 20, sizeThreshold - 1, sizeThreshold, sizeThreshold + 1}
	for _, tier := range []struct {
		name string
		o    mountOpts
	}{
		{"ram", mountOpts{threshold: sizeThreshold, ram: 64 << 20}},
		{"spilled", mountOpts{threshold: 0, ram: 64 << 20}},
	} {
		t.Run(tier.name, func(t *testing.T) {
			m := newMount(t, tier.o)
			for i, size := range sizes {
				// Once in one write(2), once in unaligned 65521-byte writes.
				for _, chunk := range []int64{size, 65521} {
					p := m.path(fmt.Sprintf("f%d-%d", size, chunk))
					data := randBytes(uint64(i+1), size)
					writeChunked(t, p, data, chunk)
					checkContent(t, p, data)
					st := lstat(t, p)
					if st.Size != size {
						t.Errorf("size %d: st_size %d", size, st.Size)
					}
					if want := (size + 4095) / 4096 * 4096; st.Blocks*512 != want {
						t.Errorf("size %d: st_blocks*512 = %d, want %d", size, st.Blocks*512, want)
					}
					onDisk := size > tier.o.threshold
					if got := m.FS.Pool().Stats().DiskFiles; (got == 1) != onDisk || got > 1 {
						t.Errorf("size %d with threshold %d: %d files on disk, want on disk: %v", size, tier.o.threshold, got, onDisk)
					}
					checkSpillDirUnnamed(t, m)
					if err := os.Remove(p); err != nil {
						t.Fatal(err)
					}
					eventually(t, "the file's spill file to be closed", func() bool { return m.FS.Pool().Stats().DiskFiles == 0 })
				}
			}
			waitUsage(t, m, baseline)
		})
	}
}

// writeChunked writes data to a new file p in chunk-sized write(2) calls.
func writeChunked(t testing.TB, p string, data []byte, chunk int64) {
	t.Helper()
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for off := int64(0); off < int64(len(data)); off += chunk {
		if _, err := f.Write(data[off:min(off+chunk, int64(len(data)))]); err != nil {
			t.Fatalf("write at %d: %v", off, err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// writeStream writes size bytes of the stream for seed to p in chunk-sized
// writes and returns their SHA-256, never holding more than a chunk.
func writeStream(t testing.TB, p string, seed uint64, size, chunk int64) [sha256.Size]byte {
	t.Helper()
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s, h, buf := newStream(seed), sha256.New(), make([]byte, chunk)
	for done := int64(0); done < size; {
		b := buf[:min(chunk, size-done)]
		s.fill(b)
		h.Write(b)
		if _, err := f.Write(b); err != nil {
			t.Fatalf("write at %d: %v", done, err)
		}
		done += int64(len(b))
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	return [sha256.Size]byte(h.Sum(nil))
}

// hashBack reads p back in chunk-sized reads, with its page cache dropped
// so that the bytes come from spoolfs, and returns its SHA-256 and length.
func hashBack(t testing.TB, p string, chunk int64) ([sha256.Size]byte, int64) {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dropCache(t, f)
	h := sha256.New()
	n, err := io.CopyBuffer(h, struct{ io.Reader }{f}, make([]byte, chunk))
	if err != nil {
		t.Fatalf("read back %s after %d bytes: %v", p, n, err)
	}
	return [sha256.Size]byte(h.Sum(nil)), n
}

func largeFile(t *testing.T, size int64) {
	m := newMount(t, mountOpts{threshold: 8 << 20, ram: 64 << 20, deadline: 10 * time.Minute})
	p := m.path("large")
	want := writeStream(t, p, 42, size, 1<<20)
	if st := lstat(t, p); st.Size != size || st.Blocks*512 != size {
		t.Errorf("st_size %d, st_blocks*512 %d, want both %d", st.Size, st.Blocks*512, size)
	}
	stats := m.FS.Pool().Stats()
	if stats.DiskFiles != 1 || stats.DiskBytes != size || stats.RAMBytes != 0 {
		t.Errorf("pool stats %+v: want the file on disk with %d bytes and no RAM held", stats, size)
	}
	if u := m.Quota.Usage(); u.Bytes != size {
		t.Errorf("quota charges %d bytes, want %d", u.Bytes, size)
	}
	checkSpillDirUnnamed(t, m)
	got, n := hashBack(t, p, 1<<20)
	if n != size || got != want {
		t.Errorf("read back %d bytes with sha256 %x, want %d bytes with %x", n, got, size, want)
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	waitUsage(t, m, baseline)
	eventually(t, "disk bytes back to 0", func() bool { return m.FS.Pool().Stats().DiskBytes == 0 })
}

// TestLargeFile streams 512 MiB through a mount with an 8 MiB threshold and
// a 64 MiB RAM budget.
func TestLargeFile(t *testing.T) { largeFile(t, 512<<20) }

// TestHugeFile does the same with 2 GiB.
func TestHugeFile(t *testing.T) {
	if testing.Short() {
		t.Skip("writes and reads 2 GiB; skipped with -short")
	}
	largeFile(t, 2<<30)
}

// TestSpillMidFile grows a file past the threshold in 64 KiB writes: it
// must stay in RAM up to the threshold, then move to an unnamed disk file
// with its content intact.
func TestSpillMidFile(t *testing.T) {
	const threshold = 4 << 20
	const chunk = 64 << 10
	m := newMount(t, mountOpts{threshold: threshold, ram: 64 << 20})
	p := m.path("growing")
	data := randBytes(7, 2*threshold)
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	for off := 0; off < len(data); off += chunk {
		if _, err := f.Write(data[off : off+chunk]); err != nil {
			t.Fatalf("write at %d: %v", off, err)
		}
		stats := m.FS.Pool().Stats()
		if end := off + chunk; end <= threshold && stats.DiskFiles != 0 {
			t.Fatalf("spilled at size %d, below the threshold %d: %+v", end, threshold, stats)
		} else if end > threshold && stats.DiskFiles != 1 {
			t.Fatalf("size %d is past the threshold %d but the file is not on disk: %+v", end, threshold, stats)
		}
	}
	stats := m.FS.Pool().Stats()
	if stats.Spills != 1 || stats.RAMBytes != 0 || stats.DiskBytes != 2*threshold {
		t.Errorf("pool stats %+v: want 1 spill, no RAM, %d disk bytes", stats, 2*threshold)
	}
	checkSpillDirUnnamed(t, m)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	checkContent(t, p, data)
	checkSpillDirUnnamed(t, m)
	if got := m.FS.Pool().Stats().DiskFiles; got != 1 {
		t.Errorf("closed but existing file: %d disk files, want 1", got)
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the spill file to be closed", func() bool { return m.FS.Pool().Stats().DiskFiles == 0 })
	waitUsage(t, m, baseline)
}

// TestAppendExclTrunc checks O_APPEND from two descriptors at once, O_EXCL
// on an existing name and O_TRUNC.
func TestAppendExclTrunc(t *testing.T) {
	tiers(t, func(t *testing.T, o mountOpts) {
		m := newMount(t, o)
		t.Run("append", func(t *testing.T) {
			const recLen, perWriter = 1000, 400
			p := m.path("log")
			writeFile(t, p, nil)
			var wg sync.WaitGroup
			errs := make(chan error, 2)
			for w := range 2 {
				f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
				if err != nil {
					t.Fatal(err)
				}
				wg.Go(func() {
					defer f.Close()
					for i := range perWriter {
						if _, err := f.Write(record(w, i, recLen)); err != nil {
							errs <- err
							return
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatalf("append: %v", err)
			}
			data := readBack(t, p)
			if len(data) != 2*perWriter*recLen {
				t.Fatalf("file has %d bytes, want %d", len(data), 2*perWriter*recLen)
			}
			next := [2]int{}
			for off := 0; off < len(data); off += recLen {
				rec := data[off : off+recLen]
				var w, i int
				if _, err := fmt.Sscanf(string(rec[:12]), "w%d i%06d", &w, &i); err != nil || w < 0 || w > 1 {
					t.Fatalf("garbled record at %d: %q", off, rec[:20])
				}
				if i != next[w] || !bytes.Equal(rec, record(w, i, recLen)) {
					t.Fatalf("record at %d: writer %d record %d, want record %d intact", off, w, i, next[w])
				}
				next[w]++
			}
		})
		t.Run("excl", func(t *testing.T) {
			p := m.path("excl")
			writeFile(t, p, []byte("keep"))
			_, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
			wantErrno(t, err, syscall.EEXIST, "O_CREAT|O_EXCL on an existing file")
			checkContent(t, p, []byte("keep"))
			f, err := os.OpenFile(m.path("excl-new"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
			if err != nil {
				t.Fatalf("O_EXCL on a new name: %v", err)
			}
			f.Close()
		})
		t.Run("trunc", func(t *testing.T) {
			p := m.path("trunc")
			writeFile(t, p, randBytes(3, 3<<20))
			before := m.Quota.Usage()
			f, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
			if err != nil {
				t.Fatal(err)
			}
			if st := fstat(t, f); st.Size != 0 || st.Blocks != 0 {
				t.Errorf("after O_TRUNC: size %d, blocks %d, want 0", st.Size, st.Blocks)
			}
			f.Close()
			checkContent(t, p, nil)
			if u := m.Quota.Usage(); u.Bytes != before.Bytes-3<<20 {
				t.Errorf("O_TRUNC of 3 MiB: quota bytes %d -> %d", before.Bytes, u.Bytes)
			}
		})
		for _, name := range listNames(t, m.Dir) {
			if err := os.Remove(m.path(name)); err != nil {
				t.Fatal(err)
			}
		}
		waitUsage(t, m, quota.Usage{Inodes: 1})
	})
}

// record is the i-th record of writer w, recLen bytes long.
func record(w, i, recLen int) []byte {
	rec := bytes.Repeat([]byte{byte('a' + w)}, recLen)
	copy(rec, fmt.Sprintf("w%d i%06d ", w, i))
	rec[recLen-1] = '\n'
	return rec
}
