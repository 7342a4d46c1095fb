package fs

import (
	"encoding/binary"
	"syscall"
	"testing"
)

// makeACL builds an ACL's xattr value from (tag, perm, id) triples.
func makeACL(entries ...[3]uint32) []byte {
	b := binary.LittleEndian.AppendUint32(nil, aclVersion)
	for _, e := range entries {
		b = binary.LittleEndian.AppendUint16(b, uint16(e[0]))
		b = binary.LittleEndian.AppendUint16(b, uint16(e[1]))
		b = binary.LittleEndian.AppendUint32(b, e[2])
	}
	return b
}

const noID = ^uint32(0)

func TestParseACLRefusesMalformed(t *testing.T) {
	base := [][3]uint32{{aclUserObj, 6, noID}, {aclGroupObj, 4, noID}, {aclOther, 4, noID}}
	valid := makeACL(base...)
	badVersion := append([]byte(nil), valid...)
	badVersion[0] = 1
	for name, value := range map[string][]byte{
		"empty":         nil,
		"header only":   valid[:aclHeaderSize],
		"cut entry":     valid[:len(valid)-1],
		"bad version":   badVersion,
		"no other":      makeACL(base[:2]...),
		"no group":      makeACL(base[0], base[2]),
		"garbage":       []byte("not an acl at all"),
		"unknown tag":   makeACL(append(base, [3]uint32{0x40, 7, 0})...),
		"every tag bit": makeACL([3]uint32{0xffff, 7, 0}),
		"setuid perm":   makeACL([3]uint32{aclUserObj, 0o4007 >> 6 << 6, noID}, base[1], base[2]),
		"two owners":    makeACL(append(base, base[0])...),
		"two masks":     makeACL(append(base, [3]uint32{aclMask, 7, noID}, [3]uint32{aclMask, 7, noID})...),
	} {
		if _, errno := parseACL(value); errno != syscall.EINVAL {
			t.Errorf("%s: parseACL gives %v, want EINVAL", name, errno)
		}
	}
	if _, errno := parseACL(valid); errno != 0 {
		t.Errorf("a minimal ACL: %v", errno)
	}
}

// TestACLModeInterplay checks the kernel's posix_acl_create_masq,
// posix_acl_chmod and posix_acl_equiv_mode arithmetic on a known case.
func TestACLModeInterplay(t *testing.T) {
	def := acl(makeACL(
		[3]uint32{aclUserObj, 7, noID}, [3]uint32{aclUser, 7, 65534},
		[3]uint32{aclGroupObj, 5, noID}, [3]uint32{aclMask, 7, noID}, [3]uint32{aclOther, 5, noID}))
	access, mode := def.inherit(syscall.S_IFREG | 0o666)
	if mode != syscall.S_IFREG|0o664 {
		t.Errorf("inherited mode %o, want 100664", mode)
	}
	if access == nil || access.modeBits() != 0o664 || !access.extended() {
		t.Fatalf("inherited ACL %v: mode bits %o", access, access.modeBits())
	}
	access.chmod(0o604)
	if got := access.modeBits(); got != 0o604 {
		t.Errorf("after chmod 604 the ACL gives %o", got)
	}
	if access.perm(1) != 7 || access.perm(2) != 5 {
		t.Errorf("chmod changed named or group entries: %d %d", access.perm(1), access.perm(2))
	}
	// A default ACL with nothing but the three entries gives no access ACL.
	minimal := acl(makeACL([3]uint32{aclUserObj, 7, noID}, [3]uint32{aclGroupObj, 7, noID}, [3]uint32{aclOther, 0, noID}))
	if access, mode := minimal.inherit(syscall.S_IFDIR | 0o777); access != nil || mode != syscall.S_IFDIR|0o770 {
		t.Errorf("minimal default: access %v, mode %o; want none, 40770", access, mode)
	}
}
