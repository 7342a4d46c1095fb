package requests

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

// TestObserveCoversEveryRequest calls every method of
// fuse.RawFileSystem through the wrapper: each request method must be
// reported exactly once, under the kernel's name for it, with the status it
// returned; the others (String, SetDebug, Init, OnUnmount) not at all.
func TestObserveCoversEveryRequest(t *testing.T) {
	notRequests := map[string]bool{"String": true, "SetDebug": true, "Init": true, "OnUnmount": true}
	names := map[string]string{"Writev": "WRITE", "CopyFileRange": "COPY_FILE_RANGE"}
	var got []string
	var gotStatus []fuse.Status
	var gotCaller []uint32
	wrapped := Observe(okWritev{fuse.NewDefaultRawFileSystem()}, func(op Op, caller uint32, took time.Duration, st fuse.Status) {
		if took < 0 {
			t.Errorf("%v took %v", op, took)
		}
		got, gotStatus, gotCaller = append(got, op.String()), append(gotStatus, st), append(gotCaller, caller)
	})
	const pid = 4242
	iface := reflect.TypeOf((*fuse.RawFileSystem)(nil)).Elem()
	seen := map[string]bool{}
	for i := range iface.NumMethod() {
		m := iface.Method(i)
		args := make([]reflect.Value, m.Type.NumIn())
		for j := range args {
			// Requests come with their header, which names the caller.
			in := m.Type.In(j)
			if in.Kind() != reflect.Pointer || in.Elem().Kind() != reflect.Struct {
				args[j] = reflect.Zero(in)
				continue
			}
			args[j] = reflect.New(in.Elem())
			if f := args[j].Elem().FieldByName("Pid"); f.IsValid() && f.CanSet() {
				f.SetUint(pid)
			}
		}
		got, gotStatus, gotCaller = nil, nil, nil
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
		wantCaller := uint32(pid)
		if want == "FORGET" { // the kernel's own, with no header
			wantCaller = 0
		}
		if gotCaller[0] != wantCaller {
			t.Errorf("%s: reported caller %d, want %d", m.Name, gotCaller[0], wantCaller)
		}
	}
	for _, op := range Ops() {
		if !seen[op.String()] {
			t.Errorf("Op %s is never reported", op)
		}
	}
}

// TestObserveWritevFallback: when Writev says ENOSYS, go-fuse calls
// Write, so the WRITE is reported once, by Write.
func TestObserveWritevFallback(t *testing.T) {
	n := 0
	wrapped := Observe(fuse.NewDefaultRawFileSystem(), func(Op, uint32, time.Duration, fuse.Status) { n++ })
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
