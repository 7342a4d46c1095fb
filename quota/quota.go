package quota

import (
	"errors"
	"math"
	"sync"
)

// ErrNoSpace means the root (mount) limit would be exceeded. The file system
// maps it to ENOSPC.
var ErrNoSpace = errors.New("no space left on device")

// ErrQuota means a limit below the root (a session) would be exceeded, or
// the account is closed. The file system maps it to EDQUOT.
var ErrQuota = errors.New("disk quota exceeded")

// ErrInvalid means a negative amount was asked for: a caller bug, reported
// rather than panicking.
var ErrInvalid = errors.New("quota: negative amount")

// Limits of an account; a zero field means unlimited. A negative field
// allows nothing.
type Limits struct {
	Bytes  int64
	Inodes int64
}

// Usage is a snapshot of what an account holds.
type Usage struct {
	Bytes  int64
	Inodes int64
}

// resource indexes counts, so that bytes and inodes share one code path.
type resource int

const (
	resBytes resource = iota
	resInodes
	numResources
)

type counts [numResources]int64

func countsOf(l Limits) counts { return counts{l.Bytes, l.Inodes} }

func (c counts) limits() Limits { return Limits{Bytes: c[resBytes], Inodes: c[resInodes]} }

func (c counts) usage() Usage { return Usage{Bytes: c[resBytes], Inodes: c[resInodes]} }

// tree holds the lock shared by every account of one tree.
type tree struct {
	mu sync.Mutex
}

// Account is one node of an accounting tree. The zero value is not usable:
// make accounts with [NewRoot] and [Account.NewChild].
type Account struct {
	tree   *tree
	parent *Account // immutable: read without the lock

	// Guarded by tree.mu.
	children map[*Account]struct{} // live children, for Close of a subtree
	user     bool                  // a uid's account (users.go), never the mount's root
	limit    counts
	own      counts // held by this account itself
	used     counts // own plus the used of every live child
	closed   bool
}

// NewRoot returns the root account of a new tree, with its own lock.
func NewRoot(l Limits) *Account {
	return &Account{tree: new(tree), limit: countsOf(l)}
}

// NewChild returns a new account below a. A child of a closed account is
// born closed.
func (a *Account) NewChild(l Limits) *Account {
	c := &Account{tree: a.tree, parent: a, limit: countsOf(l)}
	a.tree.mu.Lock()
	defer a.tree.mu.Unlock()
	if a.closed {
		c.closed = true
		return c
	}
	if a.children == nil {
		a.children = make(map[*Account]struct{})
	}
	a.children[c] = struct{}{}
	return c
}

// Reserve charges bytes to a and every ancestor, or to none of them.
func (a *Account) Reserve(bytes int64) error { return a.reserve(resBytes, bytes) }

// Release gives back bytes reserved on a, clamped to what a holds itself.
func (a *Account) Release(bytes int64) { a.release(resBytes, bytes) }

// ReserveInodes charges n inodes to a and every ancestor, or to none of them.
func (a *Account) ReserveInodes(n int64) error { return a.reserve(resInodes, n) }

// ReleaseInodes gives back n inodes reserved on a, clamped to what a holds
// itself.
func (a *Account) ReleaseInodes(n int64) { a.release(resInodes, n) }

func (a *Account) reserve(r resource, n int64) error {
	a.tree.mu.Lock()
	defer a.tree.mu.Unlock()
	return a.reserveLocked(r, n, nil)
}

// reserveLocked charges n of r to a's chain and, unless it is nil, to the
// owner's account user: to both or to neither. The mount being full wins
// over any quota, as in fits. The caller holds the lock.
func (a *Account) reserveLocked(r resource, n int64, user *Account) error {
	switch {
	case n < 0:
		return ErrInvalid
	case n == 0:
		return nil // nothing to charge, so nothing can be exceeded
	case a.closed:
		return ErrQuota
	}
	if err := a.fits(r, n); err != nil {
		return err
	}
	if user != nil {
		if err := user.fits(r, n); err != nil {
			return err
		}
		user.charge(r, n)
	}
	a.charge(r, n)
	return nil
}

// charge adds n of r to what a holds and to its chain's usage. The caller
// holds the lock and has checked that it fits.
func (a *Account) charge(r resource, n int64) {
	a.own[r] += n
	for x := a; x != nil; x = x.parent {
		x.used[r] += n
	}
}

// uncharge gives back n of r, clamped to what a holds itself. The caller
// holds the lock.
func (a *Account) uncharge(r resource, n int64) {
	n = min(n, a.own[r])
	a.own[r] -= n
	for x := a; x != nil; x = x.parent {
		x.used[r] -= n
	}
}

// fits reports whether n more of r fit on every level from a to the root,
// and if not, the error of the highest level that is full. The caller holds
// the lock.
func (a *Account) fits(r resource, n int64) error {
	var err error
	for x := a; x != nil; x = x.parent {
		if n > room(x.limit[r], x.used[r]) {
			err = ErrQuota
			if x.parent == nil && !x.user {
				err = ErrNoSpace
			}
		}
	}
	return err
}

// room is what one level can still take. An unlimited level can take up to
// math.MaxInt64 in all, so that a counter can never overflow.
func room(limit, used int64) int64 {
	switch {
	case limit == 0:
		limit = math.MaxInt64
	case limit < 0:
		return 0
	}
	return max(limit-used, 0)
}

func (a *Account) release(r resource, n int64) {
	if n <= 0 {
		return
	}
	a.tree.mu.Lock()
	defer a.tree.mu.Unlock()
	// A closed account holds nothing, so this also makes Release after
	// Close a no-op.
	a.uncharge(r, n)
}

// Usage returns what a and its live descendants hold.
func (a *Account) Usage() Usage {
	a.tree.mu.Lock()
	defer a.tree.mu.Unlock()
	return a.used.usage()
}

// Limits returns the limits of a alone, as last set.
func (a *Account) Limits() Limits {
	a.tree.mu.Lock()
	defer a.tree.mu.Unlock()
	return a.limit.limits()
}

// SetLimits changes the limits of a. A limit below the current usage keeps
// that usage and refuses reservations until it drops below the limit.
func (a *Account) SetLimits(l Limits) {
	a.tree.mu.Lock()
	defer a.tree.mu.Unlock()
	a.limit = countsOf(l)
}

// Resize changes the limits of a, as SetLimits does, unless a limit would
// be below what a holds now: then it changes nothing and returns ErrNoSpace
// for the root, ErrQuota below it, as shrinking a tmpfs below its use is
// refused.
func (a *Account) Resize(l Limits) error {
	a.tree.mu.Lock()
	defer a.tree.mu.Unlock()
	want := countsOf(l)
	for r := range want {
		if want[r] != 0 && a.used[r] > max(want[r], 0) {
			if a.parent == nil {
				return ErrNoSpace
			}
			return ErrQuota
		}
	}
	a.limit = want
	return nil
}

// Available returns how much more a could reserve now, the least room over
// a and its ancestors: what statfs reports. A field is math.MaxInt64 when no
// level limits it, and zero for a closed account.
func (a *Account) Available() Usage {
	a.tree.mu.Lock()
	defer a.tree.mu.Unlock()
	var av counts
	if a.closed {
		return av.usage()
	}
	for r := range av {
		av[r] = math.MaxInt64
		for x := a; x != nil; x = x.parent {
			if x.limit[r] != 0 { // skip unlimited levels: room would dip below MaxInt64
				av[r] = min(av[r], room(x.limit[r], x.used[r]))
			}
		}
	}
	return av.usage()
}

// Close detaches a: what a and its descendants hold is released from every
// ancestor and returned. Afterwards a and its descendants hold nothing,
// Reserve on them fails with [ErrQuota] and Release is a no-op. Closing a
// closed account returns a zero Usage.
func (a *Account) Close() Usage {
	a.tree.mu.Lock()
	defer a.tree.mu.Unlock()
	if a.closed {
		return Usage{}
	}
	held := a.used
	for x := a.parent; x != nil; x = x.parent {
		for r := range held {
			x.used[r] -= held[r]
		}
	}
	if a.parent != nil {
		delete(a.parent.children, a) // a long-lived root must not pile up ended sessions
	}
	a.shut()
	return held.usage()
}

// shut marks a's subtree closed and empty. The caller holds the lock.
func (a *Account) shut() {
	for c := range a.children {
		c.shut()
	}
	a.children = nil
	a.own = counts{}
	a.used = counts{}
	a.closed = true
}
