package fuseuring

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/spoolfs/spoolfs/fs/uring"
)

// The uAPI of FUSE-over-io_uring (include/uapi/linux/fuse.h, 7.42).
const (
	cmdRegister       = 1
	cmdCommitAndFetch = 2

	inHeaderSize  = 40  // struct fuse_in_header
	outHeaderSize = 16  // struct fuse_out_header
	opInOffset    = 128 // fuse_uring_req_header.op_in
	opInSize      = 128
	entInOutOff   = 256 // fuse_uring_req_header.ring_ent_in_out
	reqHeaderSize = 288 // sizeof(struct fuse_uring_req_header)

	// In ring_ent_in_out: the commit ID to answer with, and the size of
	// what is in the payload buffer (the kernel's to us, ours back).
	commitIDOff  = entInOutOff + 8
	payloadSzOff = entInOutOff + 16

	// Where in the header page the two iovecs naming header and payload
	// live: memory the kernel reads at REGISTER, that must not move.
	iovOff = 512

	minReadBuffer = 8192 // FUSE_MIN_READ_BUFFER
)

// Options says what a Transport serves.
type Options struct {
	// Handler answers the requests (the mount's *fuse.Server).
	Handler Handler
	// DeviceFD is a descriptor of the connection's /dev/fuse
	// (fuse.Server.DupDeviceFD). The Transport owns it from Start on.
	DeviceFD int
	// MaxWrite is the max_write negotiated at INIT: the kernel refuses
	// payload buffers smaller than it.
	MaxWrite int
	Logger   *slog.Logger
}

// Transport is the set of workers serving one FUSE connection.
type Transport struct {
	opts        Options
	payloadSize int
	queues      []queue
	workers     sync.WaitGroup
	mapped      atomic.Int64
	answered    atomic.Uint64
	closeDevice sync.Once
}

// queue counts the workers of one CPU's queue.
type queue struct {
	mu      sync.Mutex
	workers int // started and not ended
	idle    int // waiting for a request
}

// Start registers workers on the queue of every possible CPU and returns
// once each has registered its first entry or one has failed. The kernel
// switches requests over to the rings once every queue has an entry. An
// error means that did not happen; requests then stay on /dev/fuse, and
// the workers that did register end with the connection: call Wait in
// any case. With a nil Transport, the descriptor stays the caller's.
func Start(o Options) (*Transport, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	page := os.Getpagesize()
	payload := max(minReadBuffer, o.MaxWrite)
	payload = (payload + page - 1) / page * page
	cpus, err := possibleCPUs()
	if err != nil {
		return nil, err // the caller keeps the descriptor
	}
	t := &Transport{opts: o, payloadSize: payload, queues: make([]queue, cpus)}
	errs := make(chan error)
	n := 0
	for qid := range t.queues {
		for range startWorkersPerQueue {
			t.spawn(qid, errs)
			n++
		}
	}
	var first error
	for range n {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	if first != nil {
		go t.Wait() // the device descriptor closes once the registered ones end
	}
	return t, first
}

// Queues is the number of queues, one per possible CPU.
func (t *Transport) Queues() int { return len(t.queues) }

// Workers is the number of workers running now.
func (t *Transport) Workers() int {
	n := 0
	for i := range t.queues {
		q := &t.queues[i]
		q.mu.Lock()
		n += q.workers
		q.mu.Unlock()
	}
	return n
}

// BufferBytes is the memory mapped for ring entries now: per worker a
// header page and a payload buffer of max_write. At most
// Queues() * MaxWorkersPerQueue workers exist.
func (t *Transport) BufferBytes() int64 { return t.mapped.Load() }

// Answered is the number of requests answered over the rings so far.
func (t *Transport) Answered() uint64 { return t.answered.Load() }

// Wait waits until every worker has ended, which they do when the
// connection ends, and closes the device descriptor.
func (t *Transport) Wait() {
	t.workers.Wait()
	t.closeDevice.Do(func() { syscall.Close(t.opts.DeviceFD) })
}

// spawn starts a worker on queue qid, which sends the outcome of its
// registration to registered if that is not nil.
func (t *Transport) spawn(qid int, registered chan<- error) bool {
	q := &t.queues[qid]
	q.mu.Lock()
	if q.workers >= MaxWorkersPerQueue {
		q.mu.Unlock()
		return false
	}
	resident := q.workers < residentWorkersPerQueue
	q.workers++
	q.idle++
	q.mu.Unlock()
	t.workers.Add(1)
	go t.runWorker(&worker{t: t, qid: qid, resident: resident}, registered)
	return true
}

// busy marks a worker of queue qid busy with a request, and starts
// another one if none is left waiting.
func (t *Transport) busy(qid int) {
	q := &t.queues[qid]
	q.mu.Lock()
	q.idle--
	none := q.idle == 0
	q.mu.Unlock()
	if none {
		t.spawn(qid, nil)
	}
}

func (t *Transport) idle(qid int) {
	q := &t.queues[qid]
	q.mu.Lock()
	q.idle++
	q.mu.Unlock()
}

func (t *Transport) ended(qid int, wasIdle bool) {
	q := &t.queues[qid]
	q.mu.Lock()
	q.workers--
	if wasIdle {
		q.idle--
	}
	q.mu.Unlock()
	t.workers.Done()
}

// worker is one ring entry and the ring its commands go through.
type worker struct {
	t        *Transport
	qid      int
	resident bool // keeps its payload's pages between requests
	ring     *uring.Ring
	header   []byte // one page: fuse_uring_req_header, then the iovecs
	payload  []byte
	scratch  [4096]byte // a request's small payload, copied out of the way of the reply
}

func (t *Transport) runWorker(w *worker, registered chan<- error) {
	// Never unlocked: the thread ends with the worker, taking its CPU
	// affinity with it, and it is the only thread that submits on this
	// ring.
	runtime.LockOSThread()
	qid := w.qid
	wasIdle := true
	defer func() {
		w.free()
		t.ended(qid, wasIdle)
	}()
	report := func(err error) {
		if registered != nil {
			registered <- err
			registered = nil
		} else if err != nil {
			t.opts.Logger.Warn("io_uring: a worker could not register", "queue", qid, "err", err)
		}
	}
	var cpus unix.CPUSet
	cpus.Set(qid)
	if err := unix.SchedSetaffinity(0, &cpus); err != nil {
		// A CPU this process may not run on (a cpuset) still has a
		// queue, which requests issued there use: serve it unpinned.
		t.opts.Logger.Debug("io_uring: worker not pinned", "queue", qid, "err", err)
	}
	if err := w.setup(); err != nil {
		report(err)
		return
	}
	cmd := uint32(cmdRegister)
	var commitID uint64
	for {
		if !w.push(cmd, commitID) {
			report(errors.New("io_uring: submission queue full"))
			return
		}
		// Until it has said how registering went, the worker submits
		// without waiting: a REGISTER that the kernel accepts completes
		// only when a request comes, one it refuses at once.
		if err := w.ring.Enter(registered == nil); err != nil {
			report(err)
			return
		}
		c, ok := w.reap()
		if !ok {
			report(nil)
			if err := w.ring.Enter(true); err != nil {
				report(err)
				return
			}
			c, _ = w.reap()
		}
		if c.Res < 0 {
			switch errno := syscall.Errno(-c.Res); errno {
			case syscall.EINTR, syscall.EAGAIN:
				continue // resubmit the same command, as libfuse does
			case syscall.ENOTCONN, syscall.ECONNABORTED, syscall.ENODEV, syscall.ECANCELED:
				// The connection has ended: news only to a Start
				// still waiting.
				if registered != nil {
					registered <- fmt.Errorf("io_uring: %w", errno)
				}
				return
			default:
				err := fmt.Errorf("io_uring: FUSE command %d on queue %d: %w", cmd, qid, errno)
				if registered == nil {
					t.opts.Logger.Error("io_uring: worker ends", "queue", qid, "err", err)
				}
				report(err)
				return
			}
		}
		report(nil)
		wasIdle = false
		t.busy(qid)
		commitID = w.answer()
		cmd = cmdCommitAndFetch
		t.idle(qid)
		wasIdle = true
	}
}

// reap returns the completion of the entry's command, if it is there.
func (w *worker) reap() (c uring.CQE, ok bool) {
	w.ring.Reap(func(got uring.CQE) { c, ok = got, true })
	return c, ok
}

// setup makes the ring and maps the entry's buffers.
func (w *worker) setup() error {
	var err error
	if w.ring, err = uring.New(2); err != nil {
		return err
	}
	page := os.Getpagesize()
	if w.header, err = w.mmap(page); err != nil {
		return err
	}
	if w.payload, err = w.mmap(w.t.payloadSize); err != nil {
		return err
	}
	iov := (*[2]unix.Iovec)(unsafe.Pointer(&w.header[iovOff]))
	iov[0].Base, iov[0].Len = &w.header[0], reqHeaderSize
	iov[1].Base = &w.payload[0]
	iov[1].SetLen(len(w.payload))
	return nil
}

func (w *worker) mmap(n int) ([]byte, error) {
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, fmt.Errorf("io_uring: map ring buffer: %w", err)
	}
	w.t.mapped.Add(int64(n))
	return b, nil
}

// free is called once no command of the entry is in flight.
func (w *worker) free() {
	if w.ring != nil {
		w.ring.Close()
	}
	for _, b := range [][]byte{w.header, w.payload} {
		if b != nil {
			unix.Munmap(b)
			w.t.mapped.Add(-int64(len(b)))
		}
	}
}

func (w *worker) push(cmd uint32, commitID uint64) bool {
	return w.ring.Push(func(s *uring.SQE) {
		s.Opcode = uring.OpURingCmd
		s.Fd = int32(w.t.opts.DeviceFD)
		s.Off = uint64(cmd) // cmd_op
		if cmd == cmdRegister {
			s.Addr = uint64(uintptr(unsafe.Pointer(&w.header[iovOff])))
			s.Len = 2
		}
		// struct fuse_uring_cmd_req: flags, commit_id, qid.
		binary.LittleEndian.PutUint64(s.Cmd[8:], commitID)
		binary.LittleEndian.PutUint16(s.Cmd[16:], uint16(w.qid))
	})
}

// answer handles the request in the entry's buffers, leaves the reply
// there, and returns the commit ID to send it with.
func (w *worker) answer() uint64 {
	h := w.header
	le := binary.LittleEndian
	commitID := le.Uint64(h[commitIDOff:])
	unique := le.Uint64(h[8:])
	total := int(le.Uint32(h[0:]))
	payloadLen := int(le.Uint32(h[payloadSzOff:]))
	opLen := total - inHeaderSize - payloadLen

	status := -int32(syscall.EIO)
	replyLen := 0
	if opLen >= 0 && opLen <= opInSize && payloadLen <= len(w.payload) {
		in := w.payload[:payloadLen]
		if payloadLen <= len(w.scratch) {
			// Names and the like: the reply may be written into the
			// payload buffer while the request's are still read.
			in = w.scratch[:copy(w.scratch[:], in)]
		}
		n, st := w.t.opts.Handler.HandleRequest(
			[][]byte{h[:inHeaderSize], h[opInOffset : opInOffset+opLen], in},
			[][]byte{h[:outHeaderSize], w.payload})
		switch {
		case !st.Ok():
			status = -int32(st)
		case n == 0:
			// No reply for go-fuse to send; the kernel still needs a
			// commit to take its entry back.
			status = 0
		default:
			replyLen = n - outHeaderSize
			status = int32(le.Uint32(h[4:])) // the reply header's error
		}
	} else {
		w.t.opts.Logger.Error("io_uring: malformed request", "len", total, "payload", payloadLen)
	}
	// struct fuse_out_header: len, error, unique.
	le.PutUint32(h[0:], uint32(outHeaderSize+replyLen))
	le.PutUint32(h[4:], uint32(status))
	le.PutUint64(h[8:], unique)
	le.PutUint32(h[payloadSzOff:], uint32(replyLen))
	w.t.answered.Add(1)
	if used := max(payloadLen, replyLen); !w.resident && used > keepPayload {
		// The reply must stay until the commit has copied it out; what
		// lies past it is given back (the kernel's next request
		// refaults what it needs, as zeros).
		w.release(max(replyLen, keepPayload), used)
	}
	return commitID
}

// release gives the payload's pages in [from, to) back to the kernel.
func (w *worker) release(from, to int) {
	page := os.Getpagesize()
	from = (from + page - 1) / page * page
	to = min((to+page-1)/page*page, len(w.payload))
	if from < to {
		unix.Madvise(w.payload[from:to], unix.MADV_DONTNEED)
	}
}

// possibleCPUs is the kernel's nr_cpu_ids: one queue per possible CPU,
// all of which must have an entry before the kernel uses the rings (and
// until then it holds every request, so a guess would hang the mount).
func possibleCPUs() (int, error) {
	b, err := os.ReadFile(possibleCPUsFile)
	if err != nil {
		return 0, fmt.Errorf("io_uring: how many queues: %w", err)
	}
	n, ok := parseCPUList(string(b))
	if !ok {
		return 0, fmt.Errorf("io_uring: how many queues: %s: %q", possibleCPUsFile, b)
	}
	return n, nil
}

// parseCPUList returns the highest CPU of a list such as "0-3,8-11",
// plus one.
func parseCPUList(list string) (int, bool) {
	highest := -1
	for _, part := range strings.Split(strings.TrimSpace(list), ",") {
		first, last, isRange := strings.Cut(part, "-")
		if !isRange {
			last = first
		}
		lo, err1 := strconv.Atoi(first)
		hi, err2 := strconv.Atoi(last)
		if err1 != nil || err2 != nil || lo < 0 || hi < lo {
			return 0, false
		}
		highest = max(highest, hi)
	}
	return highest + 1, true
}

const possibleCPUsFile = "/sys/devices/system/cpu/possible"

var _ Handler = (*fuse.Server)(nil)
