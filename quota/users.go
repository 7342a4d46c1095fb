package quota

import (
	"maps"
	"slices"
)

// Users is the per-owner level of a tree: one account per uid, beside the
// mount > session chain and under the same lock, so that a [Charge] can
// charge both chains at once, exactly. Every uid but 0 gets the default
// limits unless it has limits of its own; uid 0 gets only limits of its
// own, as root ignores hard limits on a filesystem with quotas.
type Users struct {
	tree *tree

	// Guarded by tree.mu.
	def       counts
	overrides map[uint32]counts
	accts     map[uint32]*Account // made on first use, kept: few uids own files
}

// NewUsers returns the per-owner table of root's tree with default limits.
func (a *Account) NewUsers(def Limits) *Users {
	return &Users{tree: a.tree, def: countsOf(def), overrides: make(map[uint32]counts), accts: make(map[uint32]*Account)}
}

// limitLocked is the limit that applies to uid.
func (u *Users) limitLocked(uid uint32) counts {
	if l, ok := u.overrides[uid]; ok {
		return l
	}
	if uid == 0 {
		return counts{}
	}
	return u.def
}

// accountLocked returns uid's account, making it on first use. A user
// account has no parent and is never the root: when full, it refuses with
// [ErrQuota].
func (u *Users) accountLocked(uid uint32) *Account {
	a := u.accts[uid]
	if a == nil {
		a = &Account{tree: u.tree, user: true, limit: u.limitLocked(uid)}
		u.accts[uid] = a
	}
	return a
}

// Default returns the limits every uid without limits of its own has.
func (u *Users) Default() Limits {
	u.tree.mu.Lock()
	defer u.tree.mu.Unlock()
	return u.def.limits()
}

// SetDefault changes the default limits. As with [Account.SetLimits], usage
// above a lowered limit is kept and refuses reservations.
func (u *Users) SetDefault(l Limits) {
	u.tree.mu.Lock()
	defer u.tree.mu.Unlock()
	u.def = countsOf(l)
	for uid, a := range u.accts {
		a.limit = u.limitLocked(uid)
	}
}

// SetLimits gives uid limits of its own; nil gives it the default back.
func (u *Users) SetLimits(uid uint32, l *Limits) {
	u.tree.mu.Lock()
	defer u.tree.mu.Unlock()
	if l == nil {
		delete(u.overrides, uid)
	} else {
		u.overrides[uid] = countsOf(*l)
	}
	u.accountLocked(uid).limit = u.limitLocked(uid)
}

// UserUsage is one uid's usage and the limits that apply to it.
type UserUsage struct {
	UID    uint32
	Usage  Usage
	Limits Limits
	Own    bool // the limits are the uid's own, not the default
}

// List returns, by uid, every uid that holds something or has limits of
// its own.
func (u *Users) List() []UserUsage {
	u.tree.mu.Lock()
	defer u.tree.mu.Unlock()
	var out []UserUsage
	for _, uid := range slices.Sorted(maps.Keys(u.accts)) {
		a := u.accts[uid]
		_, own := u.overrides[uid]
		if a.used == (counts{}) && !own {
			continue
		}
		out = append(out, UserUsage{UID: uid, Usage: a.used.usage(), Limits: a.limit.limits(), Own: own})
	}
	return out
}

// Usage returns what uid's files hold.
func (u *Users) Usage(uid uint32) Usage {
	u.tree.mu.Lock()
	defer u.tree.mu.Unlock()
	if a := u.accts[uid]; a != nil {
		return a.used.usage()
	}
	return Usage{}
}

// Charge is what one node is charged to: an account of the tree (its
// session, or the root) and the account of its owner, both at once, all
// or nothing. It remembers what it holds, so that a change of owner moves
// exactly that. It satisfies spill's Accounter.
type Charge struct {
	acct  *Account // immutable
	users *Users   // immutable

	// Guarded by tree.mu.
	user *Account
	held counts
}

// Charge returns a new, empty charge to acct and to uid's account. acct
// must belong to the tree u was made from.
func (u *Users) Charge(acct *Account, uid uint32) *Charge {
	u.tree.mu.Lock()
	defer u.tree.mu.Unlock()
	return &Charge{acct: acct, users: u, user: u.accountLocked(uid)}
}

// Account returns the account of the tree that c charges.
func (c *Charge) Account() *Account { return c.acct }

// Reserve charges bytes to the account's chain and to the owner, or to
// neither.
func (c *Charge) Reserve(bytes int64) error { return c.reserve(resBytes, bytes) }

// Release gives back bytes, clamped to what c holds.
func (c *Charge) Release(bytes int64) { c.release(resBytes, bytes) }

// ReserveInodes charges n inodes to the account's chain and to the owner,
// or to neither.
func (c *Charge) ReserveInodes(n int64) error { return c.reserve(resInodes, n) }

// ReleaseInodes gives back n inodes, clamped to what c holds.
func (c *Charge) ReleaseInodes(n int64) { c.release(resInodes, n) }

func (c *Charge) reserve(r resource, n int64) error {
	c.acct.tree.mu.Lock()
	defer c.acct.tree.mu.Unlock()
	err := c.acct.reserveLocked(r, n, c.user)
	if err == nil {
		c.held[r] += n
	}
	return err
}

func (c *Charge) release(r resource, n int64) {
	if n <= 0 {
		return
	}
	c.acct.tree.mu.Lock()
	defer c.acct.tree.mu.Unlock()
	n = min(n, c.held[r])
	c.held[r] -= n
	c.acct.uncharge(r, n)
	c.user.uncharge(r, n)
}

// Held returns what c holds.
func (c *Charge) Held() Usage {
	c.acct.tree.mu.Lock()
	defer c.acct.tree.mu.Unlock()
	return c.held.usage()
}

// Chown moves what c holds from its owner's account to uid's, or, with
// [ErrQuota] if it does not fit there, changes nothing.
func (c *Charge) Chown(uid uint32) error {
	c.acct.tree.mu.Lock()
	defer c.acct.tree.mu.Unlock()
	to := c.users.accountLocked(uid)
	if to == c.user {
		return nil
	}
	for r, n := range c.held {
		if n > room(to.limit[r], to.used[r]) {
			return ErrQuota
		}
	}
	for r, n := range c.held {
		c.user.uncharge(resource(r), n)
		to.charge(resource(r), n)
	}
	c.user = to
	return nil
}
