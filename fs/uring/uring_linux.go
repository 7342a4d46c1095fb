package uring

import (
	"errors"
	"fmt"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// System calls and constants from include/uapi/linux/io_uring.h.
const (
	sysSetup = 425
	sysEnter = 426

	setupCQSize    = 1 << 3
	setupSubmitAll = 1 << 7
	setupSQE128    = 1 << 10

	featSingleMmap = 1 << 0

	enterGetEvents = 1 << 0

	offSQRing = 0
	offCQRing = 0x8000000
	offSQEs   = 0x10000000

	// OpNop completes at once with result 0; OpURingCmd passes the
	// command in the SQE's command area to the file's uring_cmd.
	OpNop      = 0
	OpURingCmd = 46
)

// SQE is a submission queue entry of a ring set up with SQE128.
type SQE struct {
	Opcode      uint8
	Flags       uint8
	IOPrio      uint16
	Fd          int32
	Off         uint64 // for OpURingCmd: cmd_op in the low 32 bits
	Addr        uint64
	Len         uint32
	OpFlags     uint32
	UserData    uint64
	BufIndex    uint16
	Personality uint16
	FileIndex   int32
	// Cmd is the command area of OpURingCmd (it overlays addr3 and the
	// padding of a 64-byte SQE, and the 64 bytes that SQE128 adds).
	Cmd [80]byte
}

// CQE is a completion queue entry.
type CQE struct {
	UserData uint64
	Res      int32
	Flags    uint32
}

type sqringOffsets struct {
	head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
	userAddr                                                        uint64
}

type cqringOffsets struct {
	head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
	userAddr                                                        uint64
}

type params struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFd uint32
	resv                                                                   [3]uint32
	sqOff                                                                  sqringOffsets
	cqOff                                                                  cqringOffsets
}

func init() {
	// The kernel's layouts; a mismatch would corrupt every command.
	if unsafe.Sizeof(SQE{}) != 128 || unsafe.Sizeof(CQE{}) != 16 || unsafe.Sizeof(params{}) != 120 {
		panic("uring: struct layout does not match the kernel's")
	}
}

// Ring is one io_uring instance.
type Ring struct {
	fd int

	sqMap, cqMap, sqeMap []byte // cqMap aliases sqMap with a single mmap

	sqHead, sqTail *uint32
	sqMask         uint32
	sqEntries      uint32
	sqArray        []uint32
	sqes           []SQE
	sqLocal        uint32 // our tail: entries pushed, published or not

	cqHead, cqTail *uint32
	cqMask         uint32
	cqes           []CQE
}

// ErrUnsupported means the kernel has no io_uring, or one without
// SQE128.
var ErrUnsupported = errors.New("io_uring with 128-byte SQEs is not available")

// New sets up a ring with room for entries submissions in flight and
// twice as many completions, so that completions never overflow while
// each submission has at most one.
func New(entries uint32) (*Ring, error) {
	p := params{flags: setupSQE128 | setupCQSize | setupSubmitAll, cqEntries: 2 * entries}
	fd, _, errno := syscall.Syscall(sysSetup, uintptr(entries), uintptr(unsafe.Pointer(&p)), 0)
	if errno != 0 {
		if errno == syscall.ENOSYS || errno == syscall.EINVAL || errno == syscall.EPERM {
			return nil, fmt.Errorf("%w: io_uring_setup: %v", ErrUnsupported, errno)
		}
		return nil, fmt.Errorf("io_uring_setup: %w", errno)
	}
	r := &Ring{fd: int(fd)}
	if err := r.mapRings(&p); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

func (r *Ring) mapRings(p *params) error {
	if p.features&featSingleMmap == 0 {
		return fmt.Errorf("%w: kernel lacks IORING_FEAT_SINGLE_MMAP", ErrUnsupported)
	}
	sqSize := uintptr(p.sqOff.array) + uintptr(p.sqEntries)*4
	cqSize := uintptr(p.cqOff.cqes) + uintptr(p.cqEntries)*unsafe.Sizeof(CQE{})
	size := max(sqSize, cqSize)
	ring, err := unix.Mmap(r.fd, offSQRing, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return fmt.Errorf("mmap io_uring rings: %w", err)
	}
	r.sqMap, r.cqMap = ring, ring
	sqes, err := unix.Mmap(r.fd, offSQEs, int(uintptr(p.sqEntries)*unsafe.Sizeof(SQE{})), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return fmt.Errorf("mmap io_uring SQEs: %w", err)
	}
	r.sqeMap = sqes

	base := unsafe.Pointer(&ring[0])
	at := func(off uint32) unsafe.Pointer { return unsafe.Add(base, off) }
	r.sqHead = (*uint32)(at(p.sqOff.head))
	r.sqTail = (*uint32)(at(p.sqOff.tail))
	r.sqMask = *(*uint32)(at(p.sqOff.ringMask))
	r.sqEntries = *(*uint32)(at(p.sqOff.ringEntries))
	r.sqArray = unsafe.Slice((*uint32)(at(p.sqOff.array)), p.sqEntries)
	r.sqes = unsafe.Slice((*SQE)(unsafe.Pointer(&sqes[0])), p.sqEntries)
	r.sqLocal = atomic.LoadUint32(r.sqTail)

	r.cqHead = (*uint32)(at(p.cqOff.head))
	r.cqTail = (*uint32)(at(p.cqOff.tail))
	r.cqMask = *(*uint32)(at(p.cqOff.ringMask))
	r.cqes = unsafe.Slice((*CQE)(at(p.cqOff.cqes)), p.cqEntries)
	return nil
}

// Push fills the next free SQE with fill and publishes it to the kernel
// (which reads it at the next Enter). It returns false if the submission
// queue is full.
func (r *Ring) Push(fill func(*SQE)) bool {
	if r.sqLocal-atomic.LoadUint32(r.sqHead) >= r.sqEntries {
		return false
	}
	i := r.sqLocal & r.sqMask
	sqe := &r.sqes[i]
	*sqe = SQE{}
	fill(sqe)
	r.sqArray[i] = i
	r.sqLocal++
	atomic.StoreUint32(r.sqTail, r.sqLocal)
	return true
}

// Enter submits what was pushed and, if wait, waits until at least one
// completion is there to reap. Interrupted waits (the Go runtime signals
// its threads) are retried.
func (r *Ring) Enter(wait bool) error {
	for {
		pending := r.sqLocal - atomic.LoadUint32(r.sqHead)
		waitNow := wait && !r.ready()
		if pending == 0 && !waitNow {
			return nil
		}
		var minComplete, flags uintptr
		if waitNow {
			minComplete, flags = 1, enterGetEvents
		}
		_, _, errno := syscall.Syscall6(sysEnter, uintptr(r.fd), uintptr(pending), minComplete, flags, 0, 0)
		switch errno {
		case 0, syscall.EINTR, syscall.EAGAIN, syscall.EBUSY:
		default:
			return fmt.Errorf("io_uring_enter: %w", errno)
		}
	}
}

// ready says whether a completion is waiting to be reaped.
func (r *Ring) ready() bool {
	return atomic.LoadUint32(r.cqTail) != atomic.LoadUint32(r.cqHead)
}

// Reap calls f with each completion that is there, oldest first, and
// frees its slot after f returns. It returns how many it reaped.
func (r *Ring) Reap(f func(CQE)) int {
	n := 0
	head := atomic.LoadUint32(r.cqHead)
	for head != atomic.LoadUint32(r.cqTail) {
		cqe := r.cqes[head&r.cqMask]
		head++
		atomic.StoreUint32(r.cqHead, head)
		f(cqe)
		n++
	}
	return n
}

// Close unmaps the rings and closes the ring's descriptor. Commands
// still in flight are cancelled by the kernel.
func (r *Ring) Close() error {
	for _, m := range [][]byte{r.sqeMap, r.sqMap} {
		if m != nil {
			unix.Munmap(m)
		}
	}
	r.sqeMap, r.sqMap, r.cqMap = nil, nil, nil
	if r.fd < 0 {
		return nil
	}
	err := syscall.Close(r.fd)
	r.fd = -1
	return err
}
