package quota

import "testing"

func BenchmarkReserveRelease(b *testing.B) {
	root := NewRoot(Limits{Bytes: 1 << 40, Inodes: 1 << 20})
	sess := root.NewChild(Limits{Bytes: 1 << 30, Inodes: 1 << 10})
	b.ReportAllocs()
	for b.Loop() {
		if err := sess.Reserve(4096); err != nil {
			b.Fatal(err)
		}
		sess.Release(4096)
	}
}

// BenchmarkReserveReleaseParallel gives every goroutine its own session under
// one root, the shape of a busy mount: all contend for the tree's one lock.
func BenchmarkReserveReleaseParallel(b *testing.B) {
	root := NewRoot(Limits{Bytes: 1 << 40, Inodes: 1 << 20})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		sess := root.NewChild(Limits{Bytes: 1 << 30, Inodes: 1 << 10})
		defer sess.Close()
		for pb.Next() {
			if err := sess.Reserve(4096); err != nil {
				b.Error(err)
				return
			}
			sess.Release(4096)
		}
	})
}
