package spill

import (
	"container/list"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"syscall"
)

// PageSize is the unit of allocation and accounting in every tier.
const PageSize = 4096

// MaxSize is the largest size a file may have, in every tier: 0.7% short
// of math.MaxInt64, so that the sealed tier's last slot ends by then too
// and no offset of a page or a slot can overflow. Spilling never changes
// what a file may hold.
const MaxSize = math.MaxInt64 / slotSize * PageSize

// Config sets up a Pool.
type Config struct {
	// Dir is the spill directory. The pool makes a private 0700 directory
	// inside it and removes it on Close. Dir must be owned by root or by
	// the process's user, and sticky if others may write it (CheckDir).
	Dir string
	// Threshold is the largest size a file may have and stay in RAM.
	// Zero sends every byte to disk.
	Threshold int64
	// RAMBudget caps the bytes of file data held in RAM across the pool.
	RAMBudget int64
	// Encrypt seals every page that goes to disk with AES-256-GCM under a
	// key drawn at NewPool and held only in memory (see the package
	// documentation). RAM pages are not encrypted.
	Encrypt bool
	// DedicatedFiles caps how many large plain files may have a spill
	// file (and a descriptor) of their own; the others share a few spill
	// files, however many they are. 0 picks min(RLIMIT_NOFILE/4, 4096)
	// from the soft limit at NewPool; a negative number allows none.
	DedicatedFiles int64
	// ProcessAlive reports whether a process of ours still runs. NewPool
	// removes the empty private directories that dead pools (processes
	// killed before their Close) left in Dir, and asks it which are dead;
	// nil leaves them all. The answer comes from outside: spill knows
	// bytes, not processes.
	ProcessAlive func(pid int) bool
	// DiskWork, if set, is called each time the pool is about to give
	// disk space back off the request path: hole punches in the shared
	// spill files, closes of large files' own, system calls that may
	// wait for the disk. A daemon that runs its Go code on fewer CPUs
	// than it may (one, while one process calls it) gives such work one
	// of its own, or requests wait behind it: a system call that blocks
	// keeps the only CPU until the runtime takes it back, and an rm -rf
	// of spilled files ran at half the speed of the same tree in RAM.
	// It must not block.
	DiskWork func()
}

// Stats is a snapshot of a pool's figures.
type Stats struct {
	RAMBytes  int64 // bytes of RAM held against the budget: file pages and HoldRAM
	DiskBytes int64 // bytes allocated in spill files
	Spills    int64 // files moved from RAM to disk so far
	Files     int64 // live files, in either tier
	DiskFiles int64 // live files on disk
	Dedicated int64 // descriptors held for spill files of one file's own
}

// ErrClosed is returned by operations on a closed file or pool.
var ErrClosed = errors.New("spill: file closed")

// ErrNoData is returned by SeekData and SeekHole when there is no data (or
// no hole) at or after the offset inside the file: ENXIO in POSIX terms.
var ErrNoData = errors.New("spill: no data at or after offset")

// ErrCorrupt is returned, wrapped, when a page of an encrypted spill file
// fails authentication: its slot on disk was changed, or is missing. The
// read gives no bytes of that page.
var ErrCorrupt = errors.New("spill: spilled data fails authentication")

// ErrInvalid is returned, wrapped, for an argument no call could accept: a
// negative offset, length, size or amount, or a range whose end is past
// the largest offset (math.MaxInt64). EINVAL in POSIX terms.
var ErrInvalid = errors.New("spill: invalid argument")

// ErrTooLarge is returned, wrapped, by a write, truncate or allocate that
// would take a file past MaxSize. EFBIG in POSIX terms.
var ErrTooLarge = errors.New("spill: file too large")

// ErrTooManyFiles: a file must spill but the process is out of
// descriptors for the pool's first shared spill files. The file stays as
// it was; ENOSPC in POSIX terms.
var ErrTooManyFiles = errors.New("spill: out of descriptors for spill files")

// ErrNoRAM says the pool could not find RAM: a file then spills, and
// HoldRAM fails with it. ENOSPC in POSIX terms.
var ErrNoRAM = errors.New("spill: RAM budget exhausted")

// Pool owns the RAM budget shared by its files and the private directory
// that holds their spilled data.
type Pool struct {
	threshold atomic.Int64 // may change while files are written: SetThreshold
	budget    atomic.Int64 // SetRAMBudget
	dir       *privateDir  // holds the unnamed spill files
	pages     pageCache
	seal      *sealer // non-nil if spilled pages are encrypted
	reclaim   *reclaimer

	maxDedicated int64        // most dedicated spill files at once
	dedicatedMin int64        // a plain file this large gets a dedicated file
	dedicated    atomic.Int64 // dedicated files open (until the reclaimer closes them)
	nextShared   atomic.Uint64

	sharedMu sync.Mutex
	shared   []*sharedFile // opened at the first spill; guarded by sharedMu
	closing  atomic.Bool   // Close has begun: no spill file is made any more

	spills    atomic.Int64
	files     atomic.Int64
	diskFiles atomic.Int64
	diskBytes atomic.Int64

	mu sync.Mutex
	// Guarded by mu:
	ramUsed int64     // file pages and held, together
	held    int64     // taken by HoldRAM
	lru     list.List // of *File in RAM, most recently used at the front
	live    map[*File]struct{}
	closed  bool
}

// NewPool makes the pool's private directory under cfg.Dir, after
// checking that no other user could replace it there (CheckDir), and keeps
// it open for the pool's lifetime. It also removes the empty private
// directories of ours left by pools whose process has died: their data,
// having no name, is already gone.
func NewPool(cfg Config) (*Pool, error) {
	if cfg.Threshold < 0 || cfg.RAMBudget < 0 {
		return nil, invalid("threshold %d, RAM budget %d", cfg.Threshold, cfg.RAMBudget)
	}
	var seal *sealer
	if cfg.Encrypt {
		var err error
		if seal, err = newSealer(); err != nil {
			return nil, err
		}
	}
	dir, err := makePrivateDir(cfg.Dir, cfg.ProcessAlive)
	if err != nil {
		return nil, fmt.Errorf("spill: %s: %w", cfg.Dir, err)
	}
	p := &Pool{
		dir: dir, seal: seal, reclaim: newReclaimer(cfg.DiskWork),
		maxDedicated: dedicatedBudget(cfg.DedicatedFiles), dedicatedMin: dedicatedMinSize,
		live: make(map[*File]struct{}),
	}
	p.threshold.Store(cfg.Threshold)
	p.budget.Store(cfg.RAMBudget)
	return p, nil
}

// Dir is the path the private directory that holds this pool's spill files
// was made at, for messages: the pool never resolves it again.
func (p *Pool) Dir() string { _, path := p.dir.current(); return path }

// Threshold is the largest size a file may have and stay in RAM.
func (p *Pool) Threshold() int64 { return p.threshold.Load() }

// RAMBudget is the pool's cap on RAM held for file data.
func (p *Pool) RAMBudget() int64 { return p.budget.Load() }

// SetThreshold changes the size past which a file moves to disk, and moves
// there the files in RAM that are already past a lower one, so that every
// RAM file stays within the threshold. A file that cannot move (the disk
// refuses, or a cap on spill files) fails it, and the threshold is then the
// new one all the same: files written later obey it.
func (p *Pool) SetThreshold(n int64) error {
	if n < 0 {
		return invalid("SetThreshold: %d bytes", n)
	}
	p.threshold.Store(n)
	return p.spillColdest(func(f *File) bool { return f.size > n }, func() bool { return false })
}

// SetRAMBudget changes the pool's cap on RAM. Lowering it below what files
// hold moves files to disk, the coldest first, until what is held fits; if
// it cannot fit (what HoldRAM took cannot move, or a file fails to move),
// the budget is put back and ErrNoRAM returned. The files moved by then stay
// on disk, which changes nothing but where their bytes are.
func (p *Pool) SetRAMBudget(n int64) error {
	if n < 0 {
		return invalid("SetRAMBudget: %d bytes", n)
	}
	old := p.budget.Swap(n) // from now on files reserve within n
	fits := func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.ramUsed <= n
	}
	err := p.spillColdest(func(f *File) bool { return f.allocated > 0 }, fits)
	if err == nil && fits() {
		return nil
	}
	p.budget.CompareAndSwap(n, old) // unless another call set one since
	if err != nil {
		return fmt.Errorf("%w: a file could not move to disk: %v", ErrNoRAM, err)
	}
	return fmt.Errorf("%w: %d bytes that cannot move to disk are held, more than %d", ErrNoRAM, p.Stats().RAMBytes, n)
}

// spillColdest moves to disk the RAM files that match, the coldest first,
// until done says so. It waits for each file's lock, which it may: it holds
// no lock of the pool while it does (files take the pool's lock inside
// theirs).
func (p *Pool) spillColdest(match func(*File) bool, done func() bool) error {
	p.mu.Lock()
	cold := make([]*File, 0, p.lru.Len())
	for e := p.lru.Back(); e != nil; e = e.Prev() {
		cold = append(cold, e.Value.(*File))
	}
	p.mu.Unlock()
	for _, f := range cold {
		if done() {
			return nil
		}
		f.mu.Lock()
		var err error
		if !f.closed && f.inRAMLocked() && match(f) {
			err = f.spillLocked()
		}
		f.mu.Unlock()
		if err != nil {
			return err
		}
	}
	return nil
}

// sharedFiles is how many shared spill files a pool has: writes to one
// file queue on its inode's lock, so a few let spilled files be written in
// parallel.
const sharedFiles = 4

// dedicatedMinSize is the size from which a plain spilled file gets a
// spill file of its own, within the pool's budget for them.
const dedicatedMinSize = 1 << 20

// dedicatedBudget is how many dedicated spill files a pool may hold for
// the configured figure n: a quarter of the descriptor limit and 4096 at
// most by default, so that the rest of the process keeps most descriptors.
func dedicatedBudget(n int64) int64 {
	if n != 0 {
		return max(n, 0)
	}
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) != nil {
		return 0
	}
	return int64(min(uint64(lim.Cur)/4, 4096))
}

// newDiskTier makes the disk tier a file of size bytes spills into: a
// dedicated spill file for a large plain file while the budget allows,
// extents in a shared spill file otherwise, sealed if the pool encrypts.
// The file that spills need not know which.
func (p *Pool) newDiskTier(size int64) (diskTier, error) {
	if p.seal == nil && size >= p.dedicatedMin {
		if d := p.newDedicated(); d != nil {
			return &plainDisk{diskPages: diskPages{st: d}}, nil
		}
	}
	sf, err := p.sharedFile()
	if err != nil {
		return nil, err
	}
	space := &sharedSpace{sf: sf, pool: p}
	if p.seal != nil {
		return &sealedDisk{diskPages: diskPages{st: space}, seal: p.seal, id: p.seal.fileIDs.Add(1)}, nil
	}
	return &plainDisk{diskPages: diskPages{st: space}}, nil
}

// sharedFile returns one of the shared spill files, in turn, opening them
// all at the first call.
func (p *Pool) sharedFile() (*sharedFile, error) {
	p.sharedMu.Lock()
	defer p.sharedMu.Unlock()
	if p.closing.Load() {
		return nil, ErrClosed
	}
	if p.shared == nil {
		unit := int64(PageSize)
		if p.seal != nil {
			unit = slotSize
		}
		files := make([]*sharedFile, 0, sharedFiles)
		for range sharedFiles {
			f, err := p.dir.newFile()
			if err != nil {
				for _, sf := range files {
					sf.f.Close()
				}
				if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
					err = fmt.Errorf("%w: %v", ErrTooManyFiles, err)
				}
				return nil, err
			}
			files = append(files, &sharedFile{f: f, unit: unit})
		}
		p.shared = files
	}
	return p.shared[p.nextShared.Add(1)%sharedFiles], nil
}

// newDedicated opens a dedicated spill file, or returns nil if the budget
// is used up or the open fails: the file then goes to the shared files.
func (p *Pool) newDedicated() *dedicatedFile {
	if p.closing.Load() {
		return nil
	}
	for {
		n := p.dedicated.Load()
		if n >= p.maxDedicated {
			return nil
		}
		if p.dedicated.CompareAndSwap(n, n+1) {
			break
		}
	}
	f, err := p.dir.newFile()
	if err != nil {
		p.dedicated.Add(-1)
		return nil
	}
	return &dedicatedFile{f: f, pool: p}
}

// promote moves a plain file of size bytes from the shared files to a
// dedicated file of its own, if the budget allows. Its pages and their
// accounting do not change; if the move fails it stays where it was, for
// good.
func (p *Pool) promote(d *plainDisk, size int64) {
	if d.stayShared || d.st.file() != nil {
		return
	}
	space, ok := d.st.(*sharedSpace)
	if !ok {
		return
	}
	ded := p.newDedicated()
	if ded == nil {
		return // the budget is full: try again later
	}
	if err := copyPages(ded, space, &d.pages); err == nil {
		// The copy wrote whole pages; the file is as long as its size,
		// unless it holds pages preallocated past the end (fallocate
		// with KEEP_SIZE), which must stay. A file's own spill file
		// longer than its size would keep FUSE passthrough away
		// (PinBacking), and a reader of it would see the tail's zeros.
		length := size
		if d.extent() > (size+PageSize-1)/PageSize*PageSize {
			length = d.extent()
		}
		err = ded.truncate(length)
		if err == nil {
			d.st = ded
			space.release()
			return
		}
	}
	ded.release()
	d.stayShared = true
}

// copyPages copies the allocated pages of space to ded, a run of pages in
// one extent at a time.
func copyPages(ded *dedicatedFile, space *sharedSpace, pages *pageSet) error {
	buf := make([]byte, 0, extentPages*PageSize)
	for _, e := range space.exts {
		first, length := extentSpan(e.idx)
		for pg := first; pg < first+length; {
			if !pages.has(pg) {
				pg++
				continue
			}
			run := int64(1)
			for pg+run < first+length && pages.has(pg+run) {
				run++
			}
			b := buf[:run*PageSize]
			if _, err := space.ReadAt(b, pg*PageSize); err != nil {
				return err
			}
			if _, err := ded.WriteAt(b, pg*PageSize); err != nil {
				return err
			}
			pg += run
		}
	}
	return nil
}

// Stats returns the pool's current figures.
func (p *Pool) Stats() Stats {
	p.mu.Lock()
	ram := p.ramUsed
	p.mu.Unlock()
	return Stats{
		RAMBytes:  ram,
		DiskBytes: p.diskBytes.Load(),
		Spills:    p.spills.Load(),
		Files:     p.files.Load(),
		DiskFiles: p.diskFiles.Load(),
		Dedicated: p.dedicated.Load(),
	}
}

// Close frees every file still live, in RAM and on disk, and removes the
// private directory: the end of a mount, when files still open were cut
// off. Further operations on those files fail with ErrClosed.
func (p *Pool) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	live := make([]*File, 0, len(p.live))
	for f := range p.live {
		live = append(live, f)
	}
	p.mu.Unlock()
	p.closing.Store(true)
	p.sharedMu.Lock()
	for _, sf := range p.shared {
		sf.closing.Store(true) // closing them frees every block: no punches
	}
	p.sharedMu.Unlock()
	var first error
	for _, f := range live { // File.Close takes f.mu, then p.mu: not held here
		if err := f.Close(); err != nil && first == nil {
			first = err
		}
	}
	p.reclaim.stop() // every file is closed: their frees are all queued
	p.sharedMu.Lock()
	for _, sf := range p.shared {
		sf.f.Close()
	}
	p.shared = nil
	p.sharedMu.Unlock()
	if err := p.dir.remove(); err != nil && first == nil {
		first = err
	}
	return first
}

// reserveRAM charges n bytes of RAM for f, evicting colder RAM files to disk
// if the budget is full. Called with f.mu held, or with a nil f for RAM held
// outside any file; returns ErrNoRAM if no room could be made, and f should
// then spill itself.
func (p *Pool) reserveRAM(f *File, n int64) error {
	const maxEvictions = 64
	var own int64 // what evicting others cannot free
	if f != nil {
		own = f.allocated
	}
	budget := p.budget.Load()
	if own+n > budget {
		// Not even all of the budget would do: evicting others is no help.
		return ErrNoRAM
	}
	for range maxEvictions {
		p.mu.Lock()
		if p.ramUsed+n <= p.budget.Load() {
			p.ramUsed += n
			if f == nil {
				p.held += n
			}
			p.mu.Unlock()
			return nil
		}
		victim := p.pickVictimLocked(f)
		p.mu.Unlock()
		if victim == nil {
			return ErrNoRAM
		}
		err := victim.spillLocked()
		victim.mu.Unlock()
		if err != nil {
			return ErrNoRAM
		}
	}
	return ErrNoRAM
}

// HoldRAM charges n bytes of RAM that the caller keeps outside any file and
// that cannot move to disk (extended attributes, symlink targets), so that
// the budget bounds all the RAM the pool's users hold: colder files are
// spilled to make room, as for a file's pages. It fails with ErrNoRAM,
// holding nothing, when no room can be made.
func (p *Pool) HoldRAM(n int64) error {
	if n < 0 {
		return invalid("HoldRAM: %d bytes", n)
	}
	if n == 0 {
		return nil
	}
	return p.reserveRAM(nil, n)
}

// ReleaseRAM gives back n bytes taken by HoldRAM, clamped to what is held:
// an over-release (a caller bug) cannot free what files hold.
func (p *Pool) ReleaseRAM(n int64) {
	p.mu.Lock()
	n = min(max(n, 0), p.held)
	p.held -= n
	p.ramUsed -= n
	p.mu.Unlock()
}

// pickVictimLocked returns a RAM file other than self, locked and ready to
// spill, or nil. It looks at the coldest files (the back of the LRU list)
// whose lock it can take without waiting and picks the one holding the
// most RAM: spilling a large cold file frees more RAM for one spill than
// spilling many tiny ones.
func (p *Pool) pickVictimLocked(self *File) *File {
	const maxTries = 16
	var best *File
	tries := 0
	for e := p.lru.Back(); e != nil && tries < maxTries; e = e.Prev() {
		v := e.Value.(*File)
		if v == self {
			continue
		}
		tries++
		if !v.mu.TryLock() {
			continue
		}
		if v.closed || !v.inRAMLocked() || (best != nil && v.allocated <= best.allocated) {
			v.mu.Unlock()
			continue
		}
		if best != nil {
			best.mu.Unlock()
		}
		best = v
	}
	return best
}

func (p *Pool) releaseRAM(n int64) {
	if n == 0 {
		return
	}
	p.mu.Lock()
	p.ramUsed -= n
	p.mu.Unlock()
}

// settle updates the figures after an operation on a file in RAM (inRAM)
// or on disk added bytes of pages to it (a negative number if it freed
// some) and had reserved charged bytes for that: in RAM, from the budget.
func (p *Pool) settle(inRAM bool, charged, added int64) {
	switch {
	case inRAM:
		p.releaseRAM(charged - added)
	case added != 0:
		p.diskBytes.Add(added)
	}
}

// touch marks f as just used.
func (p *Pool) touch(f *File) {
	p.mu.Lock()
	if f.lruElem != nil {
		p.lru.MoveToFront(f.lruElem)
	}
	p.mu.Unlock()
}

// register adds a new RAM file to the live set and the LRU list.
func (p *Pool) register(f *File) {
	p.files.Add(1)
	p.mu.Lock()
	p.live[f] = struct{}{}
	f.lruElem = p.lru.PushFront(f)
	p.mu.Unlock()
}

// spilled moves f, which holds bytes of pages, from RAM to disk.
func (p *Pool) spilled(f *File, bytes int64) {
	p.mu.Lock()
	p.removeFromLRULocked(f)
	p.ramUsed -= bytes
	p.mu.Unlock()
	p.spills.Add(1)
	p.diskFiles.Add(1)
	p.diskBytes.Add(bytes)
}

// forget drops f, closed, which held bytes of pages in RAM (inRAM) or on disk.
func (p *Pool) forget(f *File, inRAM bool, bytes int64) {
	p.files.Add(-1)
	p.mu.Lock()
	delete(p.live, f)
	if inRAM {
		p.removeFromLRULocked(f)
		p.ramUsed -= bytes
	}
	p.mu.Unlock()
	if !inRAM {
		p.diskFiles.Add(-1)
		p.diskBytes.Add(-bytes)
	}
}

func (p *Pool) removeFromLRULocked(f *File) {
	if f.lruElem != nil {
		p.lru.Remove(f.lruElem)
		f.lruElem = nil
	}
}
