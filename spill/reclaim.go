package spill

import (
	"cmp"
	"errors"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
)

// reclaimQueue is how many frees may wait for the reclaimer. Past it, the
// caller does its own: a burst of unlinks slows down to the disk's pace
// instead of piling up work without bound.
const reclaimQueue = 1024

// reclaimer gives disk space back off the request path: it punches the
// extents that files have let go of in the shared files, and closes
// dedicated files, whose last close makes the file system free an inode
// (about a millisecond on ext4). The bytes have left the accounts already;
// only the disk is waiting.
type reclaimer struct {
	diskWork func() // Config.DiskWork (or a no-op), called before each run of jobs
	jobs     chan reclaimJob
	done     chan struct{}
	pending  atomic.Int64 // jobs queued and not yet done

	mu     sync.Mutex // guards closed, and sending on jobs
	closed bool
}

// reclaimJob is one file's worth of freeing: extents of a shared file, or
// a dedicated file to close.
type reclaimJob struct {
	sf        *sharedFile
	exts      []extent
	dedicated *os.File
	then      func() // after the rest
}

func (j reclaimJob) run() {
	if j.dedicated != nil {
		j.dedicated.Close()
	}
	if j.sf != nil {
		j.sf.free(j.exts)
	}
	if j.then != nil {
		j.then()
	}
}

func newReclaimer(diskWork func()) *reclaimer {
	if diskWork == nil {
		diskWork = func() {}
	}
	r := &reclaimer{diskWork: diskWork, jobs: make(chan reclaimJob, reclaimQueue), done: make(chan struct{})}
	go r.loop()
	return r
}

// reclaimBatch is the most jobs the reclaimer takes at once.
const reclaimBatch = 256

func (r *reclaimer) loop() {
	defer close(r.done)
	batch := make([]reclaimJob, 0, reclaimBatch)
	for j := range r.jobs {
		batch = append(batch[:0], j)
	more:
		for len(batch) < reclaimBatch {
			select {
			case j, ok := <-r.jobs:
				if !ok {
					break more
				}
				batch = append(batch, j)
			default:
				break more
			}
		}
		if hasDiskWork(batch) {
			r.diskWork()
		}
		runBatch(batch)
		clear(batch) // let go of the extents and files
		r.pending.Add(-int64(len(batch)))
	}
}

// hasDiskWork reports whether a batch does more than call back (drain's
// markers do only that).
func hasDiskWork(batch []reclaimJob) bool {
	for _, j := range batch {
		if j.sf != nil || j.dedicated != nil {
			return true
		}
	}
	return false
}

// runBatch does the jobs of a batch together: the extents that files
// freed one after the other often lie end to end (files written one
// after the other were placed so), and sorted by place they take one
// punch per run instead of one per file. An rm -rf of a tree of small
// files is then a few large punches.
func runBatch(batch []reclaimJob) {
	if len(batch) == 1 {
		batch[0].run()
		return
	}
	var byFile map[*sharedFile][]extent
	for _, j := range batch {
		if j.dedicated != nil {
			j.dedicated.Close()
		}
		if j.sf != nil {
			if byFile == nil {
				byFile = make(map[*sharedFile][]extent)
			}
			byFile[j.sf] = append(byFile[j.sf], j.exts...)
		}
	}
	for sf, exts := range byFile {
		slices.SortFunc(exts, func(a, b extent) int { return cmp.Compare(a.at, b.at) })
		sf.free(exts)
	}
	for _, j := range batch {
		if j.then != nil {
			j.then()
		}
	}
}

// submit queues j, or runs it at once if the queue is full or the
// reclaimer stopped.
func (r *reclaimer) submit(j reclaimJob) {
	r.mu.Lock()
	if !r.closed {
		r.pending.Add(1)
		select {
		case r.jobs <- j:
			r.mu.Unlock()
			return
		default:
			r.pending.Add(-1)
		}
	}
	r.mu.Unlock()
	r.diskWork()
	j.run()
}

// drain waits until every free queued before it is done. It waits for
// room in the queue rather than run its marker in place, which would not
// wait for what is queued; the reclaimer takes no lock of ours, so room
// comes.
func (r *reclaimer) drain() {
	done := make(chan struct{})
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return // stop ran everything, or is running it for its caller
	}
	r.pending.Add(1)
	r.jobs <- reclaimJob{then: func() { close(done) }}
	r.mu.Unlock()
	<-done
}

// waitIfFull reports whether err is the disk being full while frees are
// still queued, after waiting for them: the caller may try once more. A
// file deleted just before finds its space given back, as when freeing
// was done on the spot.
func (r *reclaimer) waitIfFull(err error) bool {
	if !errors.Is(err, syscall.ENOSPC) || r.pending.Load() == 0 {
		return false
	}
	r.drain()
	return true
}

// free punches exts out of sf and reuses their space, once punched.
func (r *reclaimer) free(sf *sharedFile, exts []extent) {
	r.submit(reclaimJob{sf: sf, exts: exts})
}

// close closes a dedicated file, then calls done.
func (r *reclaimer) close(f *os.File, done func()) {
	r.submit(reclaimJob{dedicated: f, then: done})
}

// stop runs what is queued and ends the reclaimer; later frees run in the
// caller.
func (r *reclaimer) stop() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	close(r.jobs)
	r.mu.Unlock()
	<-r.done
}
