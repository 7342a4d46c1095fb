package main

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// readmeSection returns the lines of README.md under heading, up to the
// next heading of its level or above.
func readmeSection(t *testing.T, heading string) string {
	t.Helper()
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	level := strings.IndexByte(heading, ' ') // "### Mount flags": 3
	var lines []string
	in, fenced := false, false
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "```") {
			fenced = !fenced // a shell comment in a code block is no heading
		}
		if !fenced && strings.HasPrefix(line, "#") {
			hashes := len(line) - len(strings.TrimLeft(line, "#"))
			if in && hashes <= level {
				break
			}
			if line == heading {
				in = true
				continue
			}
		}
		if in {
			lines = append(lines, line)
		}
	}
	if !in {
		t.Fatalf("README.md has no %q", heading)
	}
	return strings.Join(lines, "\n")
}

// readmeFlagRow is one row of the README's flag table: the flags it names
// and what it gives as their default.
type readmeFlagRow struct {
	long, short []string
	def         string
}

var (
	codeSpan = regexp.MustCompile("`([^`]*)`")
	flagWord = regexp.MustCompile(`^(--[a-z][a-z-]*|-[a-zA-Z])\b`)
)

// readmeFlagTable reads the rows of the table in section whose first cell
// names flags: "| `--mode`, `-f` | `1777` | ... |".
func readmeFlagTable(section string) []readmeFlagRow {
	var rows []readmeFlagRow
	for _, line := range strings.Split(section, "\n") {
		cells := strings.Split(strings.Trim(strings.TrimSpace(line), "|"), "|")
		if !strings.HasPrefix(line, "|") || len(cells) < 3 {
			continue
		}
		var row readmeFlagRow
		for _, span := range codeSpan.FindAllStringSubmatch(cells[0], -1) {
			switch name := flagWord.FindString(span[1]); {
			case strings.HasPrefix(name, "--"):
				row.long = append(row.long, name[2:])
			case name != "":
				row.short = append(row.short, name[1:])
			}
		}
		if len(row.long) > 0 {
			row.def = strings.Join(strings.Fields(strings.ReplaceAll(cells[1], "`", "")), " ")
			rows = append(rows, row)
		}
	}
	return rows
}

// TestREADMEFlagTable: the README's table of mount flags lists every flag
// of 'spoolfs mount', with its short form and the default that the option
// table declares, and no flag that spoolfs lacks; the generic mount(8)
// options are named in the text under it. So a flag added, renamed or
// given another default without the README following fails here.
func TestREADMEFlagTable(t *testing.T) {
	section := readmeSection(t, "### Mount flags")
	rows := readmeFlagTable(section)
	if len(rows) == 0 {
		t.Fatal("no flag table under '### Mount flags' in README.md")
	}
	rowOf := map[string]readmeFlagRow{}
	for _, row := range rows {
		for _, name := range row.long {
			if _, dup := rowOf[name]; dup {
				t.Errorf("README lists --%s twice", name)
			}
			rowOf[name] = row
		}
	}
	var c mountConfig
	table := c.optionTable()
	shortOf := map[string]string{} // long name: one-letter form, or ""
	for _, o := range table {
		shortOf[o.name] = o.short
	}
	for _, o := range table {
		if o.name == optionsFlag { // the text above the table says what -o does
			continue
		}
		if o.hidden {
			if !strings.Contains(section, "`"+o.name+"`") {
				t.Errorf("README's Mount flags do not name the generic option `%s`", o.name)
			}
			continue
		}
		row, ok := rowOf[o.name]
		if !ok {
			t.Errorf("README's flag table lacks --%s", o.name)
			continue
		}
		if want := o.shownDefault(); want == "" {
			// The zero value is the default: the README says what it means.
			if !slices.Contains([]string{"none", "never", "off"}, row.def) {
				t.Errorf("README: --%s defaults to %q; the table declares none (want none, never or off)", o.name, row.def)
			}
		} else if row.def != want {
			t.Errorf("README: --%s defaults to %q; the table declares %q", o.name, row.def, want)
		}
		if o.short != "" && !slices.Contains(row.short, o.short) {
			t.Errorf("README: the row of --%s lacks -%s", o.name, o.short)
		}
	}
	for _, row := range rows {
		for _, name := range row.long {
			if _, ok := shortOf[name]; !ok {
				t.Errorf("README lists --%s, which 'spoolfs mount' does not have", name)
			}
		}
		for _, short := range row.short {
			if !slices.ContainsFunc(row.long, func(name string) bool { return shortOf[name] == short }) {
				t.Errorf("README lists -%s beside %q, which do not have it", short, row.long)
			}
		}
	}
}

// TestREADMEMountOptions: every -o string and fstab line in the README
// is one that spoolfs accepts, so the -o spellings it shows are real.
func TestREADMEMountOptions(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	written := regexp.MustCompile(`(?m)-o ([a-z][a-z0-9_]*=[a-zA-Z0-9_=,.%/-]*)|fuse\.spoolfs +([a-z]\S*) +\d +\d$`)
	matches := written.FindAllStringSubmatch(string(data), -1)
	if len(matches) < 2 {
		t.Fatalf("found %d -o examples in README.md; the pattern no longer finds them", len(matches))
	}
	for _, m := range matches {
		opts := m[1] + m[2]
		var c mountConfig
		if err := applyOptions(newMountFlags(&c), []string{opts}); err != nil {
			t.Errorf("README's %q: %v", m[0], err)
		}
	}
}
