package fs

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"

	"github.com/spoolfs/spoolfs/quota"
	"github.com/spoolfs/spoolfs/spill"
)

// TestToErrno: every error spill and quota define, bare or wrapped as they
// return them, becomes the errno a program expects; a syscall error from
// the spill disk keeps its errno; anything else is EIO.
func TestToErrno(t *testing.T) {
	f := &FS{log: discardLogger(), obs: observerOr(nil)}
	wrap := func(err error) error { return fmt.Errorf("context: %w", err) }
	for _, tc := range []struct {
		err  error
		want syscall.Errno
	}{
		{nil, 0},
		{quota.ErrNoSpace, syscall.ENOSPC},
		{quota.ErrQuota, syscall.EDQUOT},
		{spill.ErrTooManyFiles, syscall.ENOSPC},
		{wrap(spill.ErrNoRAM), syscall.ENOSPC},
		{spill.ErrNoData, syscall.ENXIO},
		{spill.ErrClosed, syscall.EBADF},
		{wrap(spill.ErrCorrupt), syscall.EIO},
		{wrap(spill.ErrInvalid), syscall.EINVAL},
		{wrap(spill.ErrTooLarge), syscall.EFBIG},
		{&os.PathError{Op: "write", Path: "spill", Err: syscall.EFBIG}, syscall.EFBIG},
		{syscall.ENOSPC, syscall.ENOSPC},
		{errors.New("something else"), syscall.EIO},
	} {
		if got := f.toErrno("test", tc.err); got != tc.want {
			t.Errorf("toErrno(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
