package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
)

// option is one command-line option, declared once. Its table (mount's in
// mountConfig.optionTable, session new's in sessionNewOptions.optionTable)
// is all that the flag set, -o parsing, --help, the manual page and shell
// completion are made from, and what a test checks the README's flag table
// against, so that none of them can say something the others do not.
type option struct {
	name  string // long name, --name; its -o spelling is oSpelling(name)
	short string // one-letter form, -x, or ""
	// value is where the flag is parsed to: a pflag.Value of our own (its
	// Type is the unit that help shows), or a *bool, *uint32, *int,
	// *string or *[]string, which parse as pflag's own flags do.
	value any
	// def is the default, parsed into value when the flag set is made;
	// "" leaves the zero value: nothing, off or none.
	def string
	// about says the default where def cannot: one worked out later from
	// the machine or from other flags, or one that depends on the caller.
	about  string
	help   string
	hidden bool // a generic mount(8) option: parsed, in the manual page and completion, not in --help
}

// optionsFlag is -o itself, which sets the others: it has no -o spelling
// of its own, and the manual page and the README describe it before the
// list rather than in it.
const optionsFlag = "options"

// optionTable is the options of one command, in the order help lists them.
type optionTable []option

// oSpelling is how mount(8) and fstab write an option: the long name with
// '_' for '-' (spill_threshold=4M). applyOption reads it back.
func oSpelling(name string) string { return strings.ReplaceAll(name, "-", "_") }

// flagName is the flag that an -o key names: oSpelling read back. The key
// may be written with '-' as well (spill-threshold=4M).
func flagName(key string) string { return strings.ReplaceAll(key, "_", "-") }

// shownDefault is the default as --help, the manual page and the README
// say it; "" when the zero value is the default.
func (o option) shownDefault() string {
	if o.about != "" {
		return o.about
	}
	return o.def
}

// usage is the help text with the default, as --help and the manual page
// show it. A string given as the default is quoted, as pflag quotes it, so
// that its ends show.
func (o option) usage(unit string) string {
	d := o.shownDefault()
	switch {
	case d == "":
		return o.help
	case unit == "string" && o.about == "":
		d = strconv.Quote(d)
	}
	return o.help + " (default " + d + ")"
}

// flagSet makes the flags of t, each holding its default. Errors are left
// to the caller, which reports them in one line.
func (t optionTable) flagSet(name string) *pflag.FlagSet {
	f := pflag.NewFlagSet(name, pflag.ContinueOnError)
	f.SetOutput(io.Discard)
	f.SortFlags = false
	for _, o := range t {
		// Each flag starts from its zero, which pflag's help leaves
		// unsaid, and then takes def: the usage says the default.
		switch v := o.value.(type) {
		case pflag.Value:
			f.VarP(v, o.name, o.short, "")
			f.Lookup(o.name).DefValue = ""
		case *bool:
			f.BoolVarP(v, o.name, o.short, false, "")
		case *uint32:
			f.Uint32VarP(v, o.name, o.short, 0, "")
		case *int:
			f.IntVarP(v, o.name, o.short, 0, "")
		case *string:
			f.StringVarP(v, o.name, o.short, "", "")
		case *[]string:
			f.StringArrayVarP(v, o.name, o.short, nil, "")
		default:
			panic(fmt.Sprintf("option --%s: cannot parse into %T", o.name, o.value))
		}
		fl := f.Lookup(o.name)
		if o.def != "" {
			if err := fl.Value.Set(o.def); err != nil { // the table is wrong, whatever the input
				panic(fmt.Sprintf("option --%s: default %q: %v", o.name, o.def, err))
			}
		}
		fl.Usage = o.usage(fl.Value.Type())
		if b, ok := fl.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
			fl.NoOptDefVal = "true"
		}
		fl.Hidden = o.hidden
	}
	return f
}
