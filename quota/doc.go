// Package quota does nested accounting of allocated bytes and inodes.
//
// It knows nothing of files or FUSE. An [Account] is a node in a tree: the
// root, made by [NewRoot], stands for the whole mount, and children made by
// [Account.NewChild] stand for sessions (top-level directories). Any depth is
// allowed. Every account has its own [Limits]; a zero field is unlimited.
//
// [Account.Reserve] charges an account and every ancestor, all or nothing,
// and [Account.Release] gives the bytes back. [Account.ReserveInodes] and
// [Account.ReleaseInodes] do the same for inodes. [Account.Close] ends an
// account (a session that is over): what it and its descendants still hold is
// returned to the ancestors, and the account refuses further reservations.
//
// # Owners
//
// Beside the tree, [Account.NewUsers] makes the per-owner level of the same
// tree: one account per uid, with a default limit for every uid (but 0,
// which, as root on a filesystem with quotas, gets only limits of its own)
// and limits of their own for some. A [Charge] is what one file is charged
// to: an account of the tree and its owner's account at once. Its Reserve
// checks both chains and charges both, or neither; its Release gives back
// to both; [Charge.Chown] moves exactly what it holds to another owner, or
// fails with [ErrQuota] and changes nothing. Owner accounts share the
// tree's lock, so a charge is as exact as a reservation on one chain.
//
// # Errors
//
// When a reservation does not fit, the error names the highest (closest to
// the root) level that is full: [ErrNoSpace] for the root (never an owner's account), which the file
// system maps to ENOSPC, and [ErrQuota] for any other level, mapped to
// EDQUOT. The mount being full is the more fundamental fact, and it is what
// df shows, so it wins over a session being at its quota. A closed account
// refuses with [ErrQuota]. A negative amount is a programming error and
// yields [ErrInvalid]; no method panics.
//
// # Invariants
//
// Each account counts what it holds itself ("own") and its usage ("used"):
//
//   - used == own + the sum of used over its live children, at every moment
//     the lock is not held. Hence an account's usage is never below what it
//     and its live children hold, and an ancestor is always charged at least
//     as much as any descendant.
//   - used <= limit for every limited account, except after [Account.SetLimits]
//     lowered the limit below the usage: the usage is kept, and reservations
//     fail until it drops below the new limit.
//   - own >= 0. A release of more than an account holds itself is clamped to
//     what it holds, so an over-release (a caller bug) can neither drive a
//     counter negative nor free bytes charged by a sibling or a child.
//   - A closed account, and every descendant of it, holds nothing, stays
//     closed, and is no longer counted by its parent.
//   - An owner's usage is the sum of what the charges it owns hold, and
//     within its limit but after a lowered one; a charge holds on its tree
//     account no more than that account holds itself.
//
// # Concurrency
//
// All methods are safe for concurrent use. One [sync.Mutex] per tree, made
// by [NewRoot] and shared by every account under it, guards every counter of
// the tree. A reservation checks the whole chain to the root and then charges
// it under that one lock, so it is exact: nothing is charged on speculation
// and rolled back later, so no concurrent reservation can fail because of
// another that was itself going to fail. The critical section is a few
// integer operations per level, so contention stays small, and the hot path
// allocates nothing. Trees do not share state: there are no globals.
package quota
