package quota

import "testing"

// opBytes is how many fuzz bytes one operation takes: kind, account and two
// operands.
const opBytes = 4

// maxOps bounds one run. Each step compares the whole tree against the
// model, so without a bound the fuzzer's longer inputs take seconds each
// and stall it; longer sequences add little that short ones do not reach.
const maxOps = 256

// decodeOps turns fuzz input into operations. Amounts are small, so that
// limits are hit often, and may be negative, to cover the invalid paths.
func decodeOps(data []byte) []op {
	data = data[:min(len(data), maxOps*opBytes)]
	ops := make([]op, 0, len(data)/opBytes)
	for ; len(data) >= opBytes; data = data[opBytes:] {
		o := op{
			kind: opKind(data[0] % byte(numOps)),
			acct: int(data[1]),
			n:    int64(data[2]) - 2,
			lim:  Limits{Bytes: 2 * int64(data[2]), Inodes: int64(data[3] % 16)},
		}
		o.uid = uint32(data[3]>>4) % numUIDs
		o.inodes = data[3]&0x40 != 0
		o.clear = data[3]&0x80 != 0
		if o.kind == opReserveInodes || o.kind == opReleaseInodes || o.inodes {
			o.n = int64(data[3]%8) - 1
		}
		ops = append(ops, o)
	}
	return ops
}

func FuzzAccount(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{
		byte(opReserve), 1, 200, 0, // a session nearly full
		byte(opReserve), 4, 200, 0, // another session pushes the root over
		byte(opReserveInodes), 2, 0, 7,
		byte(opRelease), 1, 255, 0, // over-release clamps
		byte(opClose), 0, 0, 0,
	})
	f.Add([]byte{
		byte(opSetLimits), 1, 5, 1, // session limit below what follows
		byte(opReserve), 2, 40, 0,
		byte(opNewChild), 2, 30, 3,
		byte(opReserve), 10, 20, 0,
		byte(opSetLimits), 0, 1, 0, // root limit below usage
		byte(opReserve), 10, 3, 0,
		byte(opClose), 1, 0, 0,
		byte(opReleaseInodes), 2, 0, 0,
	})
	f.Add([]byte{
		byte(opReserve), 0, 0, 0, // negative amounts
		byte(opRelease), 0, 1, 0,
		byte(opReserveInodes), 3, 0, 0,
		byte(opNewChild), 39, 0, 0,
		byte(opClose), 3, 0, 0,
	})
	f.Add([]byte{
		byte(opNewCharge), 1, 0, 0x10, // uid 1 in session 1
		byte(opNewCharge), 4, 0, 0x20, // uid 2 in session 2
		byte(opChargeReserve), 0, 100, 0x10,
		byte(opChargeReserve), 0, 30, 0x10, // past uid 1's default
		byte(opChargeReserve), 1, 3, 0x60, // inodes
		byte(opChown), 0, 0, 0x20, // uid 2 cannot take it
		byte(opSetUserLimits), 0, 200, 0x20,
		byte(opChown), 0, 0, 0x20,
		byte(opSetUserDefault), 0, 1, 0x01,
		byte(opChargeRelease), 1, 255, 0x40,
		byte(opClose), 0, 0, 0,
		byte(opChargeRelease), 0, 255, 0,
	})
	f.Fuzz(func(t *testing.T, data []byte) {
		h := newHarness()
		for _, o := range decodeOps(data) {
			h.apply(t, o)
		}
	})
}
