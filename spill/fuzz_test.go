package spill

import "testing"

// fuzzConfig is small enough that a few ops cross the threshold, fill the
// budget and hit the second file's accounter limit.
var fuzzConfig = modelConfig{
	threshold: 16 << 10,
	budget:    24 << 10,
	limits:    []int64{-1, 8 * PageSize, -1},
}

const fuzzOpBytes = 5

// decodeOps turns fuzz input into ops, five bytes each:
//
//	b0      op kind (b0 % numOps) and file (b0 / numOps)
//	b1, b2  offset: b1*256 + b2, so b2 == 0 with b1%16 == 0 is page aligned
//	b3, b4  length (or new size for Truncate): b3*64 + b4%64 + 1, up to 16 KiB;
//	        b4 also seeds the bytes written. A punch with b3 == 255 runs
//	        to 1 TiB: to the end of the file and far past it.
func decodeOps(data []byte) []op {
	const maxOps = 256
	var ops []op
	for len(data) >= fuzzOpBytes && len(ops) < maxOps {
		b := data[:fuzzOpBytes]
		data = data[fuzzOpBytes:]
		o := op{
			kind: opKind(b[0] % byte(numOps)),
			file: int(b[0] / byte(numOps)),
			off:  int64(b[1])<<8 | int64(b[2]),
			n:    int64(b[3])<<6 | int64(b[4]%64) + 1,
			seed: b[4],
		}
		switch o.kind {
		case opTruncate:
			o.n = o.off // sizes reach as far as offsets
			o.off = 0
		case opPunch:
			if b[3] == 255 {
				o.n = 1 << 40
			}
		}
		ops = append(ops, o)
	}
	return ops
}

func encodeOp(kind opKind, file int, off, n int64, seed byte) []byte {
	if kind == opTruncate {
		off, n = n, 1
	}
	n--
	return []byte{byte(file)*byte(numOps) + byte(kind), byte(off >> 8), byte(off), byte(n >> 6), byte(n%64) | seed&^63}
}

func FuzzFile(f *testing.F) {
	const P = PageSize
	seq := func(ops ...[]byte) []byte {
		var b []byte
		for _, o := range ops {
			b = append(b, o...)
		}
		return b
	}
	f.Add([]byte{})
	// Write, spill on crossing the threshold, shrink and grow.
	f.Add(seq(
		encodeOp(opWrite, 0, 100, 3*P, 1),
		encodeOp(opWrite, 0, 15*P, P+10, 2),
		encodeOp(opTruncate, 0, 0, 5000, 0),
		encodeOp(opTruncate, 0, 0, 40000, 0),
		encodeOp(opSeekData, 0, 4096, 1, 0),
		encodeOp(opSeekHole, 0, 0, 1, 0),
	))
	// Fill the budget from two files, then punch and allocate.
	f.Add(seq(
		encodeOp(opWrite, 0, 0, 3*P, 3),
		encodeOp(opWrite, 2, 0, 3*P, 4),
		encodeOp(opAllocate, 0, 3*P, 2*P, 0),
		encodeOp(opWrite, 2, 3*P, 2*P, 5),
		encodeOp(opPunch, 0, P, 2*P, 0),
		encodeOp(opRead, 0, 0, 4*P, 0),
		encodeOp(opAllocateKeep, 2, 4*P, 3*P, 0),
		encodeOp(opTruncate, 2, 0, 9000, 0),
		encodeOp(opReopen, 0, 0, 1, 0),
		encodeOp(opWrite, 0, 0, 2*P, 6),
		encodeOp(opWrite, 2, 5*P, 2*P, 7),
	))
	// Run into the accounter limit of file 1, in RAM and on disk.
	f.Add(seq(
		encodeOp(opWrite, 1, 0, 4*P, 6),
		encodeOp(opAllocateKeep, 1, 4*P, 4*P, 0),
		encodeOp(opWrite, 1, 30000, 100, 7),
		encodeOp(opPunch, 1, 0, 2*P, 0),
		encodeOp(opWrite, 1, 30000, 100, 7),
		encodeOp(opWrite, 1, 60000, 5000, 8),
	))
	// Punch to the end and far past it.
	f.Add(seq(
		encodeOp(opWrite, 0, 0, 5000, 9),
		[]byte{byte(opPunch), 16, 0, 255, 0},
		encodeOp(opSeekHole, 0, 0, 1, 0),
	))
	f.Fuzz(func(t *testing.T, data []byte) {
		ops := decodeOps(data)
		runModel(t, t.TempDir(), fuzzConfig, ops)
		encrypted := fuzzConfig
		encrypted.encrypt = true
		runModel(t, t.TempDir(), encrypted, ops)
		dedicated := fuzzConfig
		dedicated.dedicatedMin, dedicated.dedicated = 4*PageSize, 1
		runModel(t, t.TempDir(), dedicated, ops)
	})
}
