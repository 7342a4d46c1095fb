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
		if o.kind == opReserveInodes || o.kind == opReleaseInodes {
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
	f.Fuzz(func(t *testing.T, data []byte) {
		h := newHarness()
		for _, o := range decodeOps(data) {
			h.apply(t, o)
		}
	})
}
