package quota

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
)

// checkTree verifies the invariants of doc.go on a's subtree from the inside.
func checkTree(a *Account) error {
	a.tree.mu.Lock()
	defer a.tree.mu.Unlock()
	return checkLocked(a)
}

func checkLocked(a *Account) error {
	sum := a.own
	for c := range a.children {
		if c.parent != a || c.closed {
			return fmt.Errorf("bad child %p of %p (closed=%v)", c, a, c.closed)
		}
		if err := checkLocked(c); err != nil {
			return err
		}
		for r := range sum {
			sum[r] += c.used[r]
		}
	}
	if sum != a.used {
		return fmt.Errorf("account %p: used %v, own+children %v", a, a.used, sum)
	}
	for r := range a.own {
		if a.own[r] < 0 {
			return fmt.Errorf("account %p: negative own %v", a, a.own)
		}
	}
	if a.closed && (a.used != counts{} || len(a.children) != 0) {
		return fmt.Errorf("closed account %p holds %v, %d children", a, a.used, len(a.children))
	}
	return nil
}

func mustCheck(t testing.TB, a *Account) {
	t.Helper()
	if err := checkTree(a); err != nil {
		t.Fatal(err)
	}
}

func TestNewRootAndChild(t *testing.T) {
	root := NewRoot(Limits{Bytes: 100, Inodes: 10})
	s := root.NewChild(Limits{Bytes: 50})
	g := s.NewChild(Limits{})
	if root.parent != nil || s.parent != root || g.parent != s {
		t.Fatal("wrong parents")
	}
	if got := s.Limits(); got != (Limits{Bytes: 50}) {
		t.Fatalf("Limits = %+v", got)
	}
	if got := g.Usage(); got != (Usage{}) {
		t.Fatalf("fresh Usage = %+v", got)
	}
}

func TestReserve(t *testing.T) {
	tests := []struct {
		name    string
		root    Limits
		sess    Limits
		pre     int64 // reserved on the session first
		n       int64
		wantErr error
		want    int64 // session usage afterwards
	}{
		{"fits", Limits{Bytes: 100}, Limits{Bytes: 50}, 0, 50, nil, 50},
		{"exact root", Limits{Bytes: 100}, Limits{}, 60, 40, nil, 100},
		{"unlimited", Limits{}, Limits{}, 0, 1 << 40, nil, 1 << 40},
		{"zero", Limits{Bytes: 1}, Limits{Bytes: 1}, 1, 0, nil, 1},
		{"negative", Limits{}, Limits{}, 5, -1, ErrInvalid, 5},
		{"session full", Limits{Bytes: 100}, Limits{Bytes: 50}, 40, 11, ErrQuota, 40},
		{"root full", Limits{Bytes: 100}, Limits{Bytes: 500}, 90, 11, ErrNoSpace, 90},
		{"both full, root wins", Limits{Bytes: 100}, Limits{Bytes: 50}, 40, 200, ErrNoSpace, 40},
		{"negative limit", Limits{}, Limits{Bytes: -1}, 0, 1, ErrQuota, 0},
		{"overflow unlimited", Limits{}, Limits{}, math.MaxInt64 - 1, 2, ErrNoSpace, math.MaxInt64 - 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := NewRoot(tt.root)
			s := root.NewChild(tt.sess)
			if tt.pre > 0 {
				if err := s.Reserve(tt.pre); err != nil {
					t.Fatalf("pre-reserve: %v", err)
				}
			}
			if err := s.Reserve(tt.n); !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("Reserve(%d) = %v, want %v", tt.n, err, tt.wantErr)
			}
			if got := s.Usage().Bytes; got != tt.want {
				t.Fatalf("session usage %d, want %d", got, tt.want)
			}
			if got := root.Usage().Bytes; got != tt.want {
				t.Fatalf("root usage %d, want %d", got, tt.want)
			}
			mustCheck(t, root)
		})
	}
}

// TestPrecedence puts a limit on each level of a 4-level chain and checks
// that the highest full level names the error.
func TestPrecedence(t *testing.T) {
	tests := []struct {
		name    string
		full    []bool // root, session, child, grandchild
		wantErr error
	}{
		{"none", []bool{false, false, false, false}, nil},
		{"grandchild", []bool{false, false, false, true}, ErrQuota},
		{"middle", []bool{false, false, true, false}, ErrQuota},
		{"session and grandchild", []bool{false, true, false, true}, ErrQuota},
		{"root only", []bool{true, false, false, false}, ErrNoSpace},
		{"all", []bool{true, true, true, true}, ErrNoSpace},
		{"root and leaf", []bool{true, false, false, true}, ErrNoSpace},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var chain []*Account
			for i, full := range tt.full {
				l := Limits{Inodes: 1000}
				if full {
					l.Inodes = 5
				}
				if i == 0 {
					chain = append(chain, NewRoot(l))
				} else {
					chain = append(chain, chain[i-1].NewChild(l))
				}
			}
			leaf := chain[len(chain)-1]
			err := leaf.ReserveInodes(6)
			if err != tt.wantErr {
				t.Fatalf("ReserveInodes = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr != nil && chain[0].Usage().Inodes != 0 {
				t.Fatal("failed reservation charged the root")
			}
		})
	}
}

func TestRelease(t *testing.T) {
	tests := []struct {
		name string
		held int64
		rel  int64
		want int64
	}{
		{"part", 10, 4, 6},
		{"all", 10, 10, 0},
		{"over-release clamps", 10, 11, 0},
		{"zero", 10, 0, 10},
		{"negative is no-op", 10, -5, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := NewRoot(Limits{})
			s := root.NewChild(Limits{})
			if err := s.Reserve(tt.held); err != nil {
				t.Fatal(err)
			}
			s.Release(tt.rel)
			if got := s.Usage().Bytes; got != tt.want {
				t.Fatalf("usage %d, want %d", got, tt.want)
			}
			if got := root.Usage().Bytes; got != tt.want {
				t.Fatalf("root usage %d, want %d", got, tt.want)
			}
			mustCheck(t, root)
		})
	}
}

// TestReleaseKeepsOthers checks that an over-release on one account frees
// neither its sibling's nor its child's charge.
func TestReleaseKeepsOthers(t *testing.T) {
	root := NewRoot(Limits{})
	a, b := root.NewChild(Limits{}), root.NewChild(Limits{})
	c := a.NewChild(Limits{})
	for _, x := range []*Account{a, b, c} {
		if err := x.Reserve(10); err != nil {
			t.Fatal(err)
		}
	}
	a.Release(100)
	if got := a.Usage().Bytes; got != 10 {
		t.Fatalf("a usage %d, want 10 (its child's)", got)
	}
	if got := root.Usage().Bytes; got != 20 {
		t.Fatalf("root usage %d, want 20", got)
	}
	mustCheck(t, root)
}

func TestInodes(t *testing.T) {
	root := NewRoot(Limits{Inodes: 3})
	s := root.NewChild(Limits{Inodes: 2})
	if err := s.ReserveInodes(2); err != nil {
		t.Fatal(err)
	}
	if err := s.ReserveInodes(1); err != ErrQuota {
		t.Fatalf("got %v, want ErrQuota", err)
	}
	if err := s.Reserve(1 << 30); err != nil {
		t.Fatalf("bytes are a separate resource: %v", err)
	}
	s.ReleaseInodes(1)
	if got := root.Usage(); got != (Usage{Bytes: 1 << 30, Inodes: 1}) {
		t.Fatalf("root usage %+v", got)
	}
	if err := s.ReserveInodes(-1); err != ErrInvalid {
		t.Fatalf("got %v, want ErrInvalid", err)
	}
	mustCheck(t, root)
}

func TestSetLimitsBelowUsage(t *testing.T) {
	root := NewRoot(Limits{Bytes: 100})
	s := root.NewChild(Limits{Bytes: 80})
	if err := s.Reserve(60); err != nil {
		t.Fatal(err)
	}
	s.SetLimits(Limits{Bytes: 50})
	if got := s.Usage().Bytes; got != 60 {
		t.Fatalf("usage %d, want 60 kept", got)
	}
	if got := s.Available().Bytes; got != 0 {
		t.Fatalf("Available %d, want 0", got)
	}
	if err := s.Reserve(1); err != ErrQuota {
		t.Fatalf("got %v, want ErrQuota", err)
	}
	s.Release(20) // usage 40, under the new limit again
	if err := s.Reserve(10); err != nil {
		t.Fatalf("after release: %v", err)
	}
	if err := s.Reserve(1); err != ErrQuota {
		t.Fatalf("at limit: got %v, want ErrQuota", err)
	}
	root.SetLimits(Limits{Bytes: 10})
	if err := s.Reserve(1); err != ErrNoSpace {
		t.Fatalf("root lowered: got %v, want ErrNoSpace", err)
	}
	mustCheck(t, root)
}

// TestResizeRefusesBelowUse: a mount cannot shrink below what it holds,
// as tmpfs refuses; a refused Resize changes nothing, and one at exactly
// the usage, or to no limit, is taken.
func TestResizeRefusesBelowUse(t *testing.T) {
	root := NewRoot(Limits{Bytes: 100, Inodes: 10})
	s := root.NewChild(Limits{})
	if err := s.Reserve(60); err != nil {
		t.Fatal(err)
	}
	if err := s.ReserveInodes(4); err != nil {
		t.Fatal(err)
	}
	for _, l := range []Limits{{Bytes: 59, Inodes: 10}, {Bytes: 100, Inodes: 3}, {Bytes: -1}} {
		if err := root.Resize(l); err != ErrNoSpace {
			t.Errorf("Resize(%+v) of the root: %v, want ErrNoSpace", l, err)
		}
		if err := s.Resize(l); err != ErrQuota {
			t.Errorf("Resize(%+v) of a child: %v, want ErrQuota", l, err)
		}
	}
	if got := root.Limits(); got != (Limits{Bytes: 100, Inodes: 10}) {
		t.Fatalf("refused Resize changed the limits to %+v", got)
	}
	for _, l := range []Limits{{Bytes: 60, Inodes: 4}, {}, {Bytes: 1000, Inodes: 5}} {
		if err := root.Resize(l); err != nil {
			t.Fatalf("Resize(%+v): %v", l, err)
		}
		if got := root.Limits(); got != l {
			t.Fatalf("Resize(%+v) left %+v", l, got)
		}
	}
	if err := s.Reserve(941); err != ErrNoSpace {
		t.Fatalf("past the grown limit: %v, want ErrNoSpace", err)
	}
	mustCheck(t, root)
}

func TestAvailable(t *testing.T) {
	root := NewRoot(Limits{Bytes: 100})
	s := root.NewChild(Limits{Bytes: 30, Inodes: 5})
	other := root.NewChild(Limits{})
	tests := []struct {
		name string
		acct *Account
		do   func()
		want Usage
	}{
		{"fresh session", s, func() {}, Usage{Bytes: 30, Inodes: 5}},
		{"root unlimited inodes", root, func() {}, Usage{Bytes: 100, Inodes: math.MaxInt64}},
		{"session used", s, func() { _ = s.Reserve(10); _ = s.ReserveInodes(2) }, Usage{Bytes: 20, Inodes: 3}},
		{"root binds", s, func() { _ = other.Reserve(75) }, Usage{Bytes: 15, Inodes: 3}},
		{"other sees root", other, func() {}, Usage{Bytes: 15, Inodes: math.MaxInt64}},
		{"unlimited tree", NewRoot(Limits{}).NewChild(Limits{}), func() {}, Usage{Bytes: math.MaxInt64, Inodes: math.MaxInt64}},
		{"closed", s, func() { s.Close() }, Usage{}},
	}
	for _, tt := range tests {
		tt.do()
		if got := tt.acct.Available(); got != tt.want {
			t.Fatalf("%s: Available = %+v, want %+v", tt.name, got, tt.want)
		}
	}
}

func TestClose(t *testing.T) {
	root := NewRoot(Limits{Bytes: 1000, Inodes: 100})
	s := root.NewChild(Limits{})
	c := s.NewChild(Limits{})
	g := c.NewChild(Limits{})
	keep := root.NewChild(Limits{})
	for i, x := range []*Account{s, c, g, keep} {
		if err := x.Reserve(int64(10 * (i + 1))); err != nil {
			t.Fatal(err)
		}
		if err := x.ReserveInodes(1); err != nil {
			t.Fatal(err)
		}
	}
	if got := c.Close(); got != (Usage{Bytes: 50, Inodes: 2}) {
		t.Fatalf("Close = %+v, want c and g's holdings", got)
	}
	if got := s.Usage(); got != (Usage{Bytes: 10, Inodes: 1}) {
		t.Fatalf("parent usage %+v after child Close", got)
	}
	if got := root.Usage(); got != (Usage{Bytes: 50, Inodes: 2}) {
		t.Fatalf("root usage %+v", got)
	}
	for _, x := range []*Account{c, g, c.NewChild(Limits{})} {
		if err := x.Reserve(1); err != ErrQuota {
			t.Fatalf("Reserve on closed subtree: %v, want ErrQuota", err)
		}
		if err := x.Reserve(0); err != nil {
			t.Fatalf("Reserve(0) on closed: %v", err)
		}
		x.Release(10) // no-op: must not touch the ancestors
		x.ReleaseInodes(1)
		if got := x.Usage(); got != (Usage{}) {
			t.Fatalf("closed usage %+v", got)
		}
	}
	if got := root.Usage(); got != (Usage{Bytes: 50, Inodes: 2}) {
		t.Fatalf("root usage %+v after releases on closed", got)
	}
	if got := c.Close(); got != (Usage{}) {
		t.Fatalf("second Close = %+v", got)
	}
	mustCheck(t, root)
	if got := root.Close(); got != (Usage{Bytes: 50, Inodes: 2}) {
		t.Fatalf("root Close = %+v", got)
	}
	if err := keep.Reserve(1); err != ErrQuota {
		t.Fatalf("Reserve under closed root: %v", err)
	}
	mustCheck(t, root)
}

func ExampleAccount() {
	mount := NewRoot(Limits{Bytes: 1 << 20, Inodes: 1000})
	session := mount.NewChild(Limits{Bytes: 4096})
	fmt.Println(session.Reserve(4096))
	fmt.Println(session.Reserve(1))
	fmt.Println(mount.Available().Bytes)
	fmt.Println(session.Close())
	fmt.Println(mount.Usage())
	// Output:
	// <nil>
	// disk quota exceeded
	// 1044480
	// {4096 0}
	// {0 0}
}

// The reference model: plain slices indexed by account number, with every
// usage recomputed from scratch by summing over the subtree.

type model struct {
	parent []int // -1 for the root
	own    [][numResources]int64
	limit  []Limits
	closed []bool

	// The per-owner level: a uid's usage is the sum of what the charges
	// it owns hold.
	userDefault Limits
	userLimit   map[uint32]Limits
	charges     []modelCharge
}

type modelCharge struct {
	acct int
	uid  uint32
	held [numResources]int64
}

func (m *model) userLimitOf(uid uint32) Limits {
	if l, ok := m.userLimit[uid]; ok {
		return l
	}
	if uid == 0 {
		return Limits{}
	}
	return m.userDefault
}

func (m *model) userUsage(uid uint32) Usage {
	var u Usage
	for _, c := range m.charges {
		if c.uid == uid {
			u.Bytes += c.held[resBytes]
			u.Inodes += c.held[resInodes]
		}
	}
	return u
}

// userFull says whether n more of r would take uid past its limit.
func (m *model) userFull(uid uint32, r resource, n int64) bool {
	lim := limitOf(m.userLimitOf(uid), r)
	return n > 0 && lim != 0 && usedOf(m.userUsage(uid), r)+n > lim
}

func (m *model) chargeReserve(k int, r resource, n int64) error {
	c := &m.charges[k]
	if n > 0 && !m.closed[c.acct] {
		if err := m.check(c.acct, r, n); err != nil {
			return err
		}
		if m.userFull(c.uid, r, n) {
			return ErrQuota
		}
	}
	err := m.reserve(c.acct, r, n)
	if err == nil && n > 0 {
		c.held[r] += n
	}
	return err
}

func (m *model) chargeRelease(k int, r resource, n int64) {
	c := &m.charges[k]
	if n > 0 {
		n = min(n, c.held[r])
		c.held[r] -= n
		m.release(c.acct, r, n)
	}
}

func (m *model) chown(k int, uid uint32) error {
	c := &m.charges[k]
	if c.uid == uid {
		return nil
	}
	for r, n := range c.held {
		if m.userFull(uid, resource(r), n) {
			return ErrQuota
		}
	}
	c.uid = uid
	return nil
}

func (m *model) add(parent int, l Limits) {
	m.parent = append(m.parent, parent)
	m.own = append(m.own, [numResources]int64{})
	m.limit = append(m.limit, l)
	m.closed = append(m.closed, parent >= 0 && m.closed[parent])
}

func (m *model) under(j, i int) bool {
	for ; j >= 0; j = m.parent[j] {
		if j == i {
			return true
		}
	}
	return false
}

// usages sums what every account holds into itself and each ancestor.
func (m *model) usages() []Usage {
	us := make([]Usage, len(m.own))
	for j, own := range m.own {
		for x := j; x >= 0; x = m.parent[x] {
			us[x].Bytes += own[resBytes]
			us[x].Inodes += own[resInodes]
		}
	}
	return us
}

// pick returns one resource of a Limits or Usage: both are bytes, inodes.
func pick(bytes, inodes int64, r resource) int64 {
	if r == resBytes {
		return bytes
	}
	return inodes
}

func limitOf(l Limits, r resource) int64 { return pick(l.Bytes, l.Inodes, r) }

func usedOf(u Usage, r resource) int64 { return pick(u.Bytes, u.Inodes, r) }

func (m *model) reserve(i int, r resource, n int64) error {
	switch {
	case n < 0:
		return ErrInvalid
	case n == 0:
		return nil
	case m.closed[i]:
		return ErrQuota
	}
	err := m.check(i, r, n)
	if err == nil {
		m.own[i][r] += n
	}
	return err
}

// check says whether n more of r fit on i's chain, and if not, which error
// the highest full level gives.
func (m *model) check(i int, r resource, n int64) error {
	var err error
	us := m.usages()
	for j := i; j >= 0; j = m.parent[j] { // the last full level is the highest
		lim := limitOf(m.limit[j], r)
		if lim != 0 && usedOf(us[j], r)+n > lim {
			err = ErrQuota
			if j == 0 {
				err = ErrNoSpace
			}
		}
	}
	return err
}

func (m *model) release(i int, r resource, n int64) {
	if n > 0 {
		m.own[i][r] -= min(n, m.own[i][r])
	}
}

func (m *model) close(i int) Usage {
	if m.closed[i] {
		return Usage{}
	}
	u := m.usages()[i]
	for j := range m.own {
		if m.under(j, i) {
			m.closed[j] = true
			m.own[j] = [numResources]int64{}
		}
	}
	return u
}

// resize sets i's limits unless one is below what i holds.
func (m *model) resize(i int, l Limits) error {
	u := m.usages()[i]
	for r := range resource(numResources) {
		if lim := limitOf(l, r); lim != 0 && usedOf(u, r) > max(lim, 0) {
			if i == 0 {
				return ErrNoSpace
			}
			return ErrQuota
		}
	}
	m.limit[i] = l
	return nil
}

func (m *model) available(i int, us []Usage) Usage {
	if m.closed[i] {
		return Usage{}
	}
	av := [numResources]int64{math.MaxInt64, math.MaxInt64}
	for j := i; j >= 0; j = m.parent[j] {
		for r := range av {
			if lim := limitOf(m.limit[j], resource(r)); lim != 0 {
				av[r] = min(av[r], max(lim-usedOf(us[j], resource(r)), 0))
			}
		}
	}
	return Usage{Bytes: av[resBytes], Inodes: av[resInodes]}
}

type opKind uint8

const (
	opReserve opKind = iota
	opRelease
	opReserveInodes
	opReleaseInodes
	opSetLimits
	opClose
	opNewChild
	opResize
	opNewCharge      // on account acct, owned by uid
	opChargeReserve  // charge acct: n bytes, or n inodes if inodes
	opChargeRelease  // likewise
	opChown          // charge acct to uid
	opSetUserLimits  // uid gets lim, or the default back if clear
	opSetUserDefault // every uid without its own gets lim
	numOps
)

type op struct {
	kind   opKind
	acct   int // taken modulo the number of accounts (or charges)
	n      int64
	lim    Limits
	uid    uint32
	inodes bool // a charge op on inodes rather than bytes
	clear  bool // opSetUserLimits: back to the default
}

const numUIDs = 4 // uid 0 and three users: few, so that limits are hit

const maxCharges = 40

const maxAccounts = 40

// harness runs the same operations on real accounts and on the model.
type harness struct {
	accts   []*Account
	users   *Users
	charges []*Charge
	m       model
}

// newHarness builds root -> 3 sessions -> 2 children each.
func newHarness() *harness {
	h := &harness{}
	h.accts = append(h.accts, NewRoot(Limits{Bytes: 300, Inodes: 20}))
	h.m.add(-1, Limits{Bytes: 300, Inodes: 20})
	h.m.userDefault = Limits{Bytes: 120, Inodes: 6}
	h.m.userLimit = make(map[uint32]Limits)
	h.users = h.accts[0].NewUsers(h.m.userDefault)
	for s := range 3 {
		h.newChild(0, Limits{Bytes: 150, Inodes: 8})
		for range 2 {
			h.newChild(1+3*s, Limits{Bytes: 60, Inodes: 4})
		}
	}
	return h
}

func (h *harness) newChild(p int, l Limits) {
	if len(h.accts) < maxAccounts {
		h.accts = append(h.accts, h.accts[p].NewChild(l))
		h.m.add(p, l)
	}
}

func (h *harness) apply(t testing.TB, o op) {
	t.Helper()
	i := o.acct % len(h.accts)
	a := h.accts[i]
	switch o.kind {
	case opReserve, opReserveInodes:
		r, reserve := resBytes, a.Reserve
		if o.kind == opReserveInodes {
			r, reserve = resInodes, a.ReserveInodes
		}
		got := reserve(o.n)
		if want := h.m.reserve(i, r, o.n); got != want {
			t.Fatalf("%+v on %d: got %v, want %v", o, i, got, want)
		}
	case opRelease:
		a.Release(o.n)
		h.m.release(i, resBytes, o.n)
	case opReleaseInodes:
		a.ReleaseInodes(o.n)
		h.m.release(i, resInodes, o.n)
	case opSetLimits:
		a.SetLimits(o.lim)
		h.m.limit[i] = o.lim
	case opClose:
		i = 1 + o.acct%(len(h.accts)-1) // the root stays open, or the run would end
		if got, want := h.accts[i].Close(), h.m.close(i); got != want {
			t.Fatalf("Close %d: got %+v, want %+v", i, got, want)
		}
	case opNewChild:
		h.newChild(i, o.lim)
	case opResize:
		got := a.Resize(o.lim)
		if want := h.m.resize(i, o.lim); got != want {
			t.Fatalf("Resize %d to %+v: got %v, want %v", i, o.lim, got, want)
		}
	case opNewCharge:
		if len(h.charges) < maxCharges {
			h.charges = append(h.charges, h.users.Charge(a, o.uid))
			h.m.charges = append(h.m.charges, modelCharge{acct: i, uid: o.uid})
		}
	case opChargeReserve, opChargeRelease, opChown:
		h.applyCharge(t, o)
	case opSetUserLimits:
		if o.clear {
			h.users.SetLimits(o.uid, nil)
			delete(h.m.userLimit, o.uid)
		} else {
			l := o.lim
			h.users.SetLimits(o.uid, &l)
			h.m.userLimit[o.uid] = l
		}
	case opSetUserDefault:
		h.users.SetDefault(o.lim)
		h.m.userDefault = o.lim
	}
	h.compare(t)
}

func (h *harness) applyCharge(t testing.TB, o op) {
	t.Helper()
	if len(h.charges) == 0 {
		return
	}
	k := o.acct % len(h.charges)
	c := h.charges[k]
	r, reserve, release := resBytes, c.Reserve, c.Release
	if o.inodes {
		r, reserve, release = resInodes, c.ReserveInodes, c.ReleaseInodes
	}
	switch o.kind {
	case opChargeReserve:
		if got, want := reserve(o.n), h.m.chargeReserve(k, r, o.n); got != want {
			t.Fatalf("%+v on charge %d: got %v, want %v", o, k, got, want)
		}
	case opChargeRelease:
		release(o.n)
		h.m.chargeRelease(k, r, o.n)
	case opChown:
		if got, want := c.Chown(o.uid), h.m.chown(k, o.uid); got != want {
			t.Fatalf("chown charge %d to %d: got %v, want %v", k, o.uid, got, want)
		}
	}
}

func (h *harness) compare(t testing.TB) {
	t.Helper()
	us := h.m.usages()
	for i, a := range h.accts {
		if got, want := a.Usage(), us[i]; got != want {
			t.Fatalf("account %d: Usage %+v, model %+v", i, got, want)
		}
		if got, want := a.Limits(), h.m.limit[i]; got != want {
			t.Fatalf("account %d: Limits %+v, model %+v", i, got, want)
		}
		if got, want := a.Available(), h.m.available(i, us); got != want {
			t.Fatalf("account %d: Available %+v, model %+v", i, got, want)
		}
	}
	for k, c := range h.charges {
		mc := h.m.charges[k]
		if got, want := c.Held(), (Usage{Bytes: mc.held[resBytes], Inodes: mc.held[resInodes]}); got != want {
			t.Fatalf("charge %d: Held %+v, model %+v", k, got, want)
		}
	}
	listed := map[uint32]UserUsage{}
	for _, uu := range h.users.List() {
		listed[uu.UID] = uu
	}
	for uid := range uint32(numUIDs) {
		want := h.m.userUsage(uid)
		if got := h.users.Usage(uid); got != want {
			t.Fatalf("uid %d: Usage %+v, model %+v", uid, got, want)
		}
		_, own := h.m.userLimit[uid]
		uu, ok := listed[uid]
		if ok != (want != Usage{} || own) {
			t.Fatalf("uid %d: listed %v, usage %+v, own limits %v", uid, ok, want, own)
		}
		if ok && (uu.Usage != want || uu.Limits != h.m.userLimitOf(uid) || uu.Own != own) {
			t.Fatalf("uid %d: listed %+v, model usage %+v limits %+v own %v", uid, uu, want, h.m.userLimitOf(uid), own)
		}
	}
	mustCheck(t, h.accts[0])
}

func randomOp(rng *rand.Rand) op {
	o := op{acct: rng.IntN(maxAccounts), n: rng.Int64N(50) - 2}
	switch p := rng.IntN(100); {
	case p < 35:
		o.kind = opReserve
	case p < 60:
		o.kind = opRelease
	case p < 75:
		o.kind = opReserveInodes
		o.n = rng.Int64N(5) - 1
	case p < 88:
		o.kind = opReleaseInodes
		o.n = rng.Int64N(5) - 1
	case p < 91:
		o.kind = opSetLimits
		o.lim = Limits{Bytes: rng.Int64N(4) * rng.Int64N(200), Inodes: rng.Int64N(3) * rng.Int64N(10)}
	case p < 94:
		o.kind = opResize
		o.lim = Limits{Bytes: rng.Int64N(4) * rng.Int64N(200), Inodes: rng.Int64N(3) * rng.Int64N(10)}
	case p < 97:
		o.kind = opClose
	default:
		o.kind = opNewChild
		o.lim = Limits{Bytes: rng.Int64N(150), Inodes: rng.Int64N(8)}
	}
	// Half the time, the same draw acts on the per-owner level instead.
	if rng.IntN(2) == 0 {
		o.uid = uint32(rng.IntN(numUIDs))
		o.inodes = rng.IntN(3) == 0
		if o.inodes {
			o.n = rng.Int64N(5) - 1
		}
		// Limits that are often none, so that some uids run free.
		o.lim = Limits{Bytes: rng.Int64N(3) * rng.Int64N(150), Inodes: rng.Int64N(3) * rng.Int64N(8)}
		switch p := rng.IntN(100); {
		case p < 12:
			o.kind = opNewCharge
		case p < 55:
			o.kind = opChargeReserve
		case p < 85:
			o.kind = opChargeRelease
		case p < 93:
			o.kind = opChown
		case p < 97:
			o.kind, o.clear = opSetUserLimits, rng.IntN(3) == 0
		default:
			o.kind = opSetUserDefault
		}
	}
	return o
}

func TestModel(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 0x5eed))
			h := newHarness()
			for range 3000 {
				h.apply(t, randomOp(rng))
			}
		})
	}
}

// TestConcurrentLimit hammers a tree from many goroutines and counts, from
// outside, what is held: a reservation is counted after it succeeded and
// uncounted before it is released, so the count never exceeds what the
// accounts hold and must stay within every limit.
func TestConcurrentLimit(t *testing.T) {
	const rootLimit, sessLimit, sessions, perSession, steps = 1000, 400, 4, 4, 2000
	root := NewRoot(Limits{Bytes: rootLimit, Inodes: 50})
	var total atomic.Int64
	var wg sync.WaitGroup
	for s := range sessions {
		sess := root.NewChild(Limits{Bytes: sessLimit})
		var sessHeld atomic.Int64
		for g := range perSession {
			rng := rand.New(rand.NewPCG(uint64(s), uint64(g)))
			wg.Go(func() {
				hammer(t, rng, sess, steps, &total, &sessHeld)
			})
		}
	}
	wg.Wait()
	if got := root.Usage(); got != (Usage{}) {
		t.Fatalf("root usage %+v after all released", got)
	}
	mustCheck(t, root)
}

func hammer(t *testing.T, rng *rand.Rand, a *Account, steps int, total, sessHeld *atomic.Int64) {
	var held []int64
	for range steps {
		if len(held) > 0 && rng.IntN(2) == 0 {
			n := held[len(held)-1]
			held = held[:len(held)-1]
			total.Add(-n)
			sessHeld.Add(-n)
			a.Release(n)
			a.ReleaseInodes(1)
			continue
		}
		n := rng.Int64N(100) + 1
		if a.ReserveInodes(1) != nil {
			continue
		}
		if err := a.Reserve(n); err != nil {
			a.ReleaseInodes(1)
			if err != ErrQuota && err != ErrNoSpace {
				t.Errorf("Reserve: %v", err)
			}
			continue
		}
		held = append(held, n)
		if sum := total.Add(n); sum > a.parent.Limits().Bytes {
			t.Errorf("held %d over the root limit", sum)
		}
		if sum := sessHeld.Add(n); sum > a.Limits().Bytes {
			t.Errorf("session held %d over its limit", sum)
		}
		if u := a.parent.Usage(); u.Bytes > a.parent.Limits().Bytes || u.Inodes > a.parent.Limits().Inodes {
			t.Errorf("root usage %+v over its limits", u)
		}
	}
	for _, n := range held {
		total.Add(-n)
		sessHeld.Add(-n)
		a.Release(n)
		a.ReleaseInodes(1)
	}
}

// TestConcurrentNoSpuriousFailure gives each goroutine a share of the root
// limit that sums to exactly the limit: every reservation must succeed, so
// none may fail because of another's transient charge.
func TestConcurrentNoSpuriousFailure(t *testing.T) {
	const workers, share, steps = 16, 64, 3000
	root := NewRoot(Limits{Bytes: workers * share, Inodes: workers})
	var wg sync.WaitGroup
	for w := range workers {
		// Half the workers charge a limited session, half an unlimited one,
		// so both the session and the root levels run at their edge.
		l := Limits{}
		if w%2 == 0 {
			l = Limits{Bytes: share, Inodes: 1}
		}
		sess := root.NewChild(l)
		rng := rand.New(rand.NewPCG(uint64(w), 7))
		wg.Go(func() {
			for range steps {
				n := rng.Int64N(share) + 1
				if err := sess.ReserveInodes(1); err != nil {
					t.Errorf("ReserveInodes: %v", err)
					return
				}
				if err := sess.Reserve(n); err != nil {
					t.Errorf("Reserve(%d): %v", n, err)
					return
				}
				if err := sess.Reserve(share - n); err != nil {
					t.Errorf("Reserve rest: %v", err)
					return
				}
				sess.Release(share)
				sess.ReleaseInodes(1)
			}
		})
	}
	wg.Wait()
	if got := root.Usage(); got != (Usage{}) {
		t.Fatalf("root usage %+v", got)
	}
}

// TestConcurrentClose ends sessions while their goroutines still reserve and
// release: the root must end up holding exactly what the live sessions hold.
func TestConcurrentClose(t *testing.T) {
	const sessions, steps = 8, 2000
	root := NewRoot(Limits{Bytes: 10000, Inodes: 1000})
	var wg sync.WaitGroup
	accts := make([]*Account, sessions)
	for s := range accts {
		accts[s] = root.NewChild(Limits{Bytes: 2000})
		child := accts[s].NewChild(Limits{})
		rng := rand.New(rand.NewPCG(uint64(s), 11))
		wg.Go(func() {
			for i := range steps {
				a := []*Account{accts[s], child}[i%2]
				n := rng.Int64N(50)
				if err := a.Reserve(n); err != nil && err != ErrQuota && err != ErrNoSpace {
					t.Errorf("Reserve: %v", err)
				}
				_ = a.ReserveInodes(1)
				if rng.IntN(3) == 0 {
					a.Release(rng.Int64N(60))
					a.ReleaseInodes(1)
				}
			}
		})
	}
	for s := range sessions / 2 {
		wg.Go(func() { accts[2*s].Close() })
	}
	wg.Wait()
	var want Usage
	for s, a := range accts {
		u := a.Usage()
		if s%2 == 0 && u != (Usage{}) {
			t.Fatalf("closed session %d holds %+v", s, u)
		}
		want.Bytes += u.Bytes
		want.Inodes += u.Inodes
	}
	if got := root.Usage(); got != want {
		t.Fatalf("root usage %+v, sessions hold %+v", got, want)
	}
	mustCheck(t, root)
	for _, a := range accts {
		a.Close()
	}
	if got := root.Usage(); got != (Usage{}) {
		t.Fatalf("root usage %+v after closing all", got)
	}
	mustCheck(t, root)
}

// TestConcurrentCharges charges two sessions on behalf of three owners from
// many goroutines, some of which chown their charges meanwhile: no owner
// and no session may ever go past its limit, and once everything is given
// back every account, tree or owner, must hold nothing.
func TestConcurrentCharges(t *testing.T) {
	const workers, steps = 12, 2000
	root := NewRoot(Limits{Bytes: 3000, Inodes: 60})
	users := root.NewUsers(Limits{Bytes: 700, Inodes: 15})
	sessions := []*Account{root.NewChild(Limits{Bytes: 1200}), root.NewChild(Limits{Inodes: 25})}
	var wg sync.WaitGroup
	for w := range workers {
		rng := rand.New(rand.NewPCG(uint64(w), 13))
		wg.Go(func() {
			var held []*Charge
			for range steps {
				switch p := rng.IntN(10); {
				case p < 4:
					c := users.Charge(sessions[w%2], uint32(1+rng.IntN(3)))
					if c.ReserveInodes(1) == nil {
						_ = c.Reserve(rng.Int64N(100))
						held = append(held, c)
					}
				case p < 6 && len(held) > 0:
					_ = held[rng.IntN(len(held))].Chown(uint32(1 + rng.IntN(3)))
				case len(held) > 0:
					c := held[len(held)-1]
					held = held[:len(held)-1]
					u := c.Held()
					c.Release(u.Bytes)
					c.ReleaseInodes(u.Inodes)
				}
				for _, uu := range users.List() {
					if uu.Usage.Bytes > uu.Limits.Bytes || uu.Usage.Inodes > uu.Limits.Inodes {
						t.Errorf("uid %d holds %+v, over %+v", uu.UID, uu.Usage, uu.Limits)
					}
				}
			}
			for _, c := range held {
				c.Release(math.MaxInt64)
				c.ReleaseInodes(math.MaxInt64)
			}
		})
	}
	wg.Wait()
	if got := root.Usage(); got != (Usage{}) {
		t.Fatalf("root usage %+v after all released", got)
	}
	for _, uu := range users.List() {
		t.Errorf("uid %d still holds %+v", uu.UID, uu.Usage)
	}
	mustCheck(t, root)
}
