package fs

import (
	"context"
	"encoding/binary"
	"slices"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/spoolfs/spoolfs/fs/proc"
	"github.com/spoolfs/spoolfs/quota"
)

// POSIX ACLs. With FUSE_POSIX_ACL the kernel checks permissions against
// them and caches them, but leaves the rest to the filesystem, as tmpfs's
// generic code does it: storing them (as the extended attributes below, so
// that they are charged like any other), keeping the access ACL and the
// mode's permission bits in step both ways (setfacl changes the mode,
// chmod changes the ACL), and giving a new node its directory's default
// ACL. The kernel has already checked who may set one, that it is valid,
// and that a default ACL goes on a directory only.
const (
	aclAccessName  = "system.posix_acl_access"
	aclDefaultName = "system.posix_acl_default"
)

// The kernel's posix_acl_xattr format: a version, then entries of a tag,
// permission bits and, for named users and groups, an id.
const (
	aclVersion    = 2
	aclHeaderSize = 4
	aclEntrySize  = 8

	aclUserObj  = 0x01
	aclUser     = 0x02
	aclGroupObj = 0x04
	aclGroup    = 0x08
	aclMask     = 0x10
	aclOther    = 0x20
)

// acl is a valid ACL in its xattr form; its entries are edited in place.
type acl []byte

func (a acl) entries() int     { return (len(a) - aclHeaderSize) / aclEntrySize }
func (a acl) tag(i int) uint16 { return binary.LittleEndian.Uint16(a[aclHeaderSize+i*aclEntrySize:]) }
func (a acl) perm(i int) uint32 {
	return uint32(binary.LittleEndian.Uint16(a[aclHeaderSize+i*aclEntrySize+2:]))
}
func (a acl) setPerm(i int, perm uint32) {
	binary.LittleEndian.PutUint16(a[aclHeaderSize+i*aclEntrySize+2:], uint16(perm&7))
}

// parseACL checks the shape of a value: known tags and rwx bits only, and
// one each of the owner, group and other entries (at most one mask),
// which the code below counts on. The kernel has validated it further.
func parseACL(value []byte) (acl, syscall.Errno) {
	a := acl(value)
	if len(a) < aclHeaderSize || (len(a)-aclHeaderSize)%aclEntrySize != 0 ||
		binary.LittleEndian.Uint32(a) != aclVersion {
		return nil, syscall.EINVAL
	}
	var userObj, groupObj, mask, other int
	for i := range a.entries() {
		if a.perm(i) > 7 {
			return nil, syscall.EINVAL // more than rwx would reach the mode's other bits
		}
		switch a.tag(i) {
		case aclUserObj:
			userObj++
		case aclGroupObj:
			groupObj++
		case aclMask:
			mask++
		case aclOther:
			other++
		case aclUser, aclGroup:
		default:
			return nil, syscall.EINVAL
		}
	}
	if userObj != 1 || groupObj != 1 || other != 1 || mask > 1 {
		return nil, syscall.EINVAL
	}
	return a, 0
}

// extended tells an ACL that says more than permission bits can.
func (a acl) extended() bool {
	for i := range a.entries() {
		switch a.tag(i) {
		case aclUser, aclGroup, aclMask:
			return true
		}
	}
	return false
}

// classes returns the entries that the mode's owner, group and other
// bits stand for: the group class is the mask where there is one, else
// the owning group's entry (parseACL made sure each is there).
func (a acl) classes() (owner, group, other int) {
	mask := -1
	for i := range a.entries() {
		switch a.tag(i) {
		case aclUserObj:
			owner = i
		case aclGroupObj:
			group = i
		case aclMask:
			mask = i
		case aclOther:
			other = i
		}
	}
	if mask >= 0 {
		group = mask
	}
	return owner, group, other
}

// modeBits is the permission bits an access ACL gives the mode
// (posix_acl_equiv_mode).
func (a acl) modeBits() uint32 {
	owner, group, other := a.classes()
	return a.perm(owner)<<6 | a.perm(group)<<3 | a.perm(other)
}

// chmod sets the classes' entries from mode's bits, as chmod(2) does to
// an access ACL (posix_acl_chmod): with a mask, chmod never widens a named
// entry's rights, nor the owning group's.
func (a acl) chmod(mode uint32) {
	owner, group, other := a.classes()
	a.setPerm(owner, mode>>6)
	a.setPerm(group, mode>>3)
	a.setPerm(other, mode)
}

// inherit returns what a node made with mode gets from its directory's
// default ACL def (posix_acl_create): its access ACL, each class cut to
// what mode allows, or nil if the mode says all of it; and its mode, whose
// permission bits are cut to what the ACL allows. The umask plays no part:
// a default ACL replaces it.
func (def acl) inherit(mode uint32) (acl, uint32) {
	a := acl(append([]byte(nil), def...))
	owner, group, other := a.classes()
	a.setPerm(owner, a.perm(owner)&(mode>>6))
	a.setPerm(group, a.perm(group)&(mode>>3))
	a.setPerm(other, a.perm(other)&mode)
	mode = mode&^0o777 | a.modeBits()
	if !a.extended() {
		return nil, mode
	}
	return a, mode
}

// setAccessACLLocked stores an access ACL and sets the mode's permission
// bits from it (posix_acl_update_mode). One the mode says all of is not
// stored: getfacl then shows the mode, as on tmpfs. The caller holds xmu.
func (a *attrs) setAccessACLLocked(ctx context.Context, value []byte, flags uint32) syscall.Errno {
	acl, errno := parseACL(value)
	if errno != 0 {
		return errno
	}
	if acl.extended() {
		errno = a.setLocked(aclAccessName, value, flags)
	} else {
		a.removeLocked(aclAccessName)
	}
	if errno != 0 {
		return errno
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.mode = a.mode&^0o777 | acl.modeBits()
	if a.mode&syscall.S_ISGID != 0 && !inGroupOrRoot(ctx, a.gid) {
		// Else a user outside the group could make a setgid file
		// executable by its group, which chmod would refuse
		// (CVE-2016-7097).
		a.mode &^= syscall.S_ISGID
	}
	a.ctime = a.fsys.now()
	return 0
}

// inGroupOrRoot tells whether the caller is root or in group gid, which
// the kernel asks before it lets an ACL keep a setgid bit. Root stands for
// CAP_FSETID; the groups are the caller's supplementary ones too, where
// /proc shows them (else it is taken to be outside, and the bit goes).
func inGroupOrRoot(ctx context.Context, gid uint32) bool {
	c, ok := fuse.FromContext(ctx)
	if !ok {
		return false
	}
	return c.Uid == 0 || c.Gid == gid || proc.InGroup(int(c.Pid), gid)
}

// chmodACLLocked brings a stored access ACL in line with a new mode. The
// caller holds xmu and mu.
func (a *attrs) chmodACLLocked(mode uint32) {
	if i, ok := a.xattrs.find(aclAccessName); ok {
		acl(a.xattrs[i].value).chmod(mode)
	}
}

func (a *attrs) isDir() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.mode&syscall.S_IFMT == syscall.S_IFDIR
}

// inheritance is what a node about to be made gets from its directory's
// default ACL: its access ACL, and a directory's default ACL too, charged
// to its account before the node is made (see meta.go).
type inheritance struct {
	xattrs  xattrList
	held    int64 // what they take, as setLocked counts it
	charged int64
}

// inherit returns, charged to acct, what a node made in n with mode gets
// from n's default ACL, and the mode it is made with. Without a default
// ACL it is nothing and mode (the umask has cut it already: see RawFS).
func (n *dirNode) inherit(charge *quota.Charge, mode uint32) (inheritance, uint32, syscall.Errno) {
	n.xmu.Lock()
	var def acl
	if i, ok := n.xattrs.find(aclDefaultName); ok {
		def = slices.Clone(n.xattrs[i].value)
	}
	n.xmu.Unlock()
	if def == nil || mode&syscall.S_IFMT == syscall.S_IFLNK {
		return inheritance{}, mode, 0
	}
	access, mode := def.inherit(mode)
	list := make(xattrList, 0, 2)
	if access != nil {
		list = append(list, xattr{aclAccessName, access})
	}
	if mode&syscall.S_IFMT == syscall.S_IFDIR {
		list = append(list, xattr{aclDefaultName, def})
	}
	if len(list) == 0 {
		return inheritance{}, mode, 0
	}
	held := int64(cap(list)) * xattrSlot
	for _, x := range list {
		held += nameHeld(x.name) + int64(cap(x.value))
	}
	charged := roundUp(held, metaUnit)
	if err := n.fsys.holdMeta(charge, charged); err != nil {
		return inheritance{}, mode, n.fsys.toErrno("create", err)
	}
	return inheritance{list, held, charged}, mode, 0
}

// release gives the charge back when the node is not made after all.
func (in inheritance) release(f *FS, charge *quota.Charge) {
	if in.charged > 0 {
		f.releaseMeta(charge, in.charged)
	}
}

// adopt gives a new node, not yet seen by anyone, what it inherited.
func (a *attrs) adopt(in inheritance) {
	a.xattrs, a.metaHeld = in.xattrs, in.held
	a.metaCharged.Store(in.charged)
}
