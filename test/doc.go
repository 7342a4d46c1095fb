// Package test holds spoolfs's integration tests: they mount a real spoolfs,
// in this process and through the built binary, and drive it with ordinary
// system calls and tools (cp, dd, tar, rm -rf, getfattr).
//
// They need root and /dev/fuse. Without them the tests skip with a reason,
// except when CI=true: then they fail, because a skipped suite is not a
// passing one.
//
// Every mount is unmounted in t.Cleanup, with a deadline; a server that
// does not answer has its connection aborted through fusectl, so that a
// bug cannot hang the run or leave a mount behind. Cleanup also checks that
// nothing is left: no mount, no spill file, no leaked descriptor. All of
// that is package fs/fusetest, the harness that fs's own tests share;
// harness_test.go only says how a spoolfs is built for a test.
package test
