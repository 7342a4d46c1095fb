package fs

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// okWritev answers WRITE through Writev, as go-fuse's node bridge does.
type okWritev struct{ fuse.RawFileSystem }

func (okWritev) Writev(<-chan struct{}, *fuse.WriteIn, [][]byte) (uint32, fuse.Status) {
	return 0, fuse.OK
}

// TestObserveOpsCoversEveryRequest calls every method of
// fuse.RawFileSystem through the wrapper: each request method must be
// reported exactly once, under the kernel's name for it, with the status it
// returned; the others (String, SetDebug, Init, OnUnmount) not at all.
func TestObserveOpsCoversEveryRequest(t *testing.T) {
	notRequests := map[string]bool{"String": true, "SetDebug": true, "Init": true, "OnUnmount": true}
	names := map[string]string{"Writev": "WRITE", "CopyFileRange": "COPY_FILE_RANGE"}
	var got []string
	var gotStatus []fuse.Status
	wrapped := ObserveOps(okWritev{fuse.NewDefaultRawFileSystem()}, func(op Op, took time.Duration, st fuse.Status) {
		if took < 0 {
			t.Errorf("%v took %v", op, took)
		}
		got, gotStatus = append(got, op.String()), append(gotStatus, st)
	})
	iface := reflect.TypeOf((*fuse.RawFileSystem)(nil)).Elem()
	seen := map[string]bool{}
	for i := range iface.NumMethod() {
		m := iface.Method(i)
		args := make([]reflect.Value, m.Type.NumIn())
		for j := range args {
			args[j] = reflect.Zero(m.Type.In(j))
		}
		got, gotStatus = nil, nil
		out := reflect.ValueOf(wrapped).MethodByName(m.Name).Call(args)
		if notRequests[m.Name] {
			if len(got) != 0 {
				t.Errorf("%s is not a request but was reported as %v", m.Name, got)
			}
			continue
		}
		want, ok := names[m.Name]
		if !ok {
			want = strings.ToUpper(m.Name)
		}
		if len(got) != 1 || got[0] != want {
			t.Errorf("%s: reported %v, want [%s]", m.Name, got, want)
			continue
		}
		seen[want] = true
		status := fuse.OK
		if n := len(out); n > 0 {
			if st, ok := out[n-1].Interface().(fuse.Status); ok {
				status = st
			}
		}
		if gotStatus[0] != status {
			t.Errorf("%s: reported status %v, returned %v", m.Name, gotStatus[0], status)
		}
	}
	for _, op := range Ops() {
		if !seen[op.String()] {
			t.Errorf("Op %s is never reported", op)
		}
	}
}

// TestObserveOpsWritevFallback: when Writev says ENOSYS, go-fuse calls
// Write, so the WRITE is reported once, by Write.
func TestObserveOpsWritevFallback(t *testing.T) {
	n := 0
	wrapped := ObserveOps(fuse.NewDefaultRawFileSystem(), func(Op, time.Duration, fuse.Status) { n++ })
	if _, st := wrapped.Writev(nil, &fuse.WriteIn{}, nil); st != fuse.ENOSYS {
		t.Fatalf("Writev: %v, want ENOSYS", st)
	}
	if n != 0 {
		t.Errorf("a Writev answered ENOSYS was reported")
	}
}

func TestOpNames(t *testing.T) {
	names := map[string]bool{}
	for i, op := range Ops() {
		if int(op) != i || op.String() == "" || op.String() == "UNKNOWN" || names[op.String()] {
			t.Errorf("Ops()[%d] = %d %q", i, op, op)
		}
		names[op.String()] = true
	}
}
