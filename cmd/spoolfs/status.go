package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/pflag"

	"github.com/spoolfs/spoolfs/fs/control"
)

// The mount's figures are control.Status, read through user.spoolfs.status:
// the daemon and the CLI share the type, so they cannot disagree on a field.

func runStatus(args []string, stdout, stderr io.Writer) int {
	var asJSON bool
	f := newJSONFlags("status", &asJSON)
	if code, ok := parseFlags(f, args, "Usage: spoolfs status MOUNTPOINT [--json]", stdout, stderr); !ok {
		return code
	}
	if f.NArg() != 1 {
		fmt.Fprintln(stderr, "spoolfs status: need exactly one MOUNTPOINT")
		return exitUsage
	}
	path := f.Arg(0)
	var st *control.Status
	if raw, err := getControl(path, control.AttrStatus); err == nil {
		st = new(control.Status)
		if err := json.Unmarshal([]byte(raw), st); err != nil {
			fmt.Fprintf(stderr, "spoolfs status: bad figures from %s: %v\n", path, err)
			return exitFailure
		}
	}
	var users []control.UserUsage
	if raw, err := getControl(path, control.AttrUsers); err == nil {
		if err := json.Unmarshal([]byte(raw), &users); err != nil {
			fmt.Fprintf(stderr, "spoolfs status: bad user figures from %s: %v\n", path, err)
			return exitFailure
		}
	}
	sessions, err := listSessions(path)
	if err != nil {
		fmt.Fprintf(stderr, "spoolfs status: %v\n", err)
		return exitFailure
	}
	if asJSON {
		printJSON(stdout, control.StatusReport{Mount: st, Users: users, Sessions: nonNil(sessions)})
		return exitOK
	}
	if st != nil {
		printMountStatus(stdout, st)
		if userLimitsInForce(st, users) {
			fmt.Fprintln(stdout)
			printUsers(stdout, users)
		}
		if len(sessions) > 0 {
			fmt.Fprintln(stdout)
		}
	}
	printSessions(stdout, sessions, time.Now())
	return exitOK
}

func printMountStatus(w io.Writer, st *control.Status) {
	ib := func(n int64) string { return humanize.IBytes(uint64(n)) }
	capacity := "unlimited"
	if st.Capacity > 0 {
		capacity = ib(st.Capacity)
	}
	inodes := "unlimited"
	if st.Inodes > 0 {
		inodes = humanize.Comma(st.Inodes)
	}
	fmt.Fprintf(w, "capacity    %s used of %s\n", ib(st.Used), capacity)
	fmt.Fprintf(w, "ram         %s of %s budget (files up to %s stay in RAM)\n", ib(st.RAMUsed), ib(st.RAMBudget), ib(st.SpillThreshold))
	fmt.Fprintf(w, "spilled     %s on disk in %s files (%s spills so far)\n", ib(st.DiskUsed), humanize.Comma(st.SpilledFiles), humanize.Comma(st.Spills))
	fmt.Fprintf(w, "inodes      %s used of %s\n", humanize.Comma(st.InodesUsed), inodes)
	fmt.Fprintf(w, "sessions    %d\n", st.Sessions)
	if st.Transport != "" { // an older daemon does not say
		fmt.Fprintf(w, "transport   %s\n", transportText(st.Transport))
	}
}

// transportText says a transport's name for people.
func transportText(name string) string {
	switch name {
	case transportURing:
		return "uring (FUSE over io_uring)"
	case transportDev:
		return "dev (/dev/fuse)"
	}
	return name
}

// userLimitsInForce says whether the per-user table is worth printing:
// without limits it only repeats, by owner, what the sessions show.
func userLimitsInForce(st *control.Status, users []control.UserUsage) bool {
	if st.UserDefaults != (control.UserLimit{}) {
		return true
	}
	for _, u := range users {
		if u.Own {
			return true
		}
	}
	return false
}

// printUsers is the per-user table: what each uid owns and may own.
func printUsers(w io.Writer, users []control.UserUsage) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "USER\tUSED\tSIZE LIMIT\tINODES\tINODE LIMIT\tLIMITS")
	for _, u := range users {
		inodeLimit := "-"
		if u.InodesLimit > 0 {
			inodeLimit = humanize.Comma(u.InodesLimit)
		}
		source := "default"
		if u.Own {
			source = "own"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", quoteName(userName(u.UID)), humanize.IBytes(uint64(u.Bytes)),
			limitText(u.SizeLimit), humanize.Comma(u.Inodes), inodeLimit, source)
	}
	tw.Flush()
}

// newJSONFlags makes the flags of a command whose one flag is --json.
func newJSONFlags(name string, asJSON *bool) *pflag.FlagSet {
	f := pflag.NewFlagSet(name, pflag.ContinueOnError)
	f.BoolVar(asJSON, "json", false, "print JSON for scripts; README.md lists its fields")
	return f
}

// printJSON writes v indented, for scripts.
func printJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// nonNil makes an empty list print as [] rather than null.
func nonNil(sessions []*control.SessionInfo) []*control.SessionInfo {
	if sessions == nil {
		return []*control.SessionInfo{}
	}
	return sessions
}
