package main

import (
	"errors"
	"io/fs"
	"slices"
	"testing"
)

func TestHelperArgs(t *testing.T) {
	cases := []struct {
		name          string
		args, written []string
		want          []string
	}{
		{"mount.fuse3's words dropped", []string{"/m", "-o", "rw,size=2G,dev,suid"}, nil,
			[]string{"/m", "-o", "rw,size=2G"}},
		{"written suid and dev put back", []string{"/m", "-o", "rw,size=2G,dev,suid"}, []string{"size=2G", "suid", "dev"},
			[]string{"/m", "-o", "rw,size=2G", "-o", "suid,dev"}},
		{"the last word counts", []string{"/m", "-o", "rw,dev,suid"}, []string{"suid", "nosuid", "nodev", "dev"},
			[]string{"/m", "-o", "rw", "-o", "dev"}},
		{"mount(8)'s nosuid wins over what was read", []string{"/m", "-o", "rw,nosuid,dev"}, []string{"suid", "dev"},
			[]string{"/m", "-o", "rw,nosuid", "-o", "dev"}},
		{"defaults is not suid", []string{"/m", "-o", "rw,dev,suid"}, []string{"defaults"},
			[]string{"/m", "-o", "rw"}},
		{"no options", []string{"/m"}, []string{"suid"}, []string{"/m"}},
		{"-o last, without value", []string{"/m", "-o"}, nil, []string{"/m", "-o"}},
	}
	for _, c := range cases {
		if got := helperArgs(c.args, c.written); !slices.Equal(got, c.want) {
			t.Errorf("%s: helperArgs(%q, %q) = %q, want %q", c.name, c.args, c.written, got, c.want)
		}
	}
}

func TestMountOptions(t *testing.T) {
	fstabs := map[string]string{
		"/etc/fstab": "# comment\n" +
			"UUID=1 / ext4 defaults 0 1\n" +
			"spoolfs /mnt/s fuse.spoolfs size=1G,suid 0 0\n" +
			"spoolfs /mnt/with\\040space/ fuse.spoolfs dev 0 0\n" +
			"spoolfs /mnt/s fuse.spoolfs nosuid 0 0\n",
		"/tmp/other": "spoolfs /mnt/s fuse.spoolfs nodev\n",
	}
	readFile := func(p string) ([]byte, error) {
		if s, ok := fstabs[p]; ok {
			return []byte(s), nil
		}
		return nil, fs.ErrNotExist
	}
	cases := []struct {
		argv []string
		dir  string
		want []string
	}{
		{[]string{"mount", "-t", "fuse.spoolfs", "spoolfs", "/mnt/s", "-o", "size=2G,suid"}, "/mnt/s", []string{"size=2G", "suid"}},
		{[]string{"mount", "spoolfs", "/mnt/s", "-t", "fuse.spoolfs", "-osize=2G,dev", "--options=suid", "--options", "nodev"}, "/mnt/s",
			[]string{"size=2G", "dev", "suid", "nodev"}},
		{[]string{"mount", "-vo", "suid", "/mnt/s"}, "/mnt/s", []string{"size=1G", "suid", "suid"}},
		{[]string{"mount", "/mnt/s"}, "/mnt/s", []string{"size=1G", "suid"}},
		{[]string{"mount", "-a"}, "/mnt/s", []string{"size=1G", "suid"}},
		{[]string{"mount", "--all", "-t", "fuse.spoolfs"}, "/mnt/s", []string{"size=1G", "suid"}},
		{[]string{"mount", "/mnt/with space"}, "/mnt/with space", []string{"dev"}},
		{[]string{"mount", "-T", "/tmp/other", "/mnt/s"}, "/mnt/s", []string{"nodev"}},
		{[]string{"mount", "--fstab=/tmp/other", "-o", "dev", "/mnt/s"}, "/mnt/s", []string{"nodev", "dev"}},
		{[]string{"mount", "--fstab", "/nonexistent", "/mnt/s"}, "/mnt/s", nil},
		{[]string{"mount", "--options-mode", "append", "-o", "nosuid", "/mnt/s"}, "/mnt/s", []string{"nosuid", "size=1G", "suid"}},
		{[]string{"mount", "--options-mode=ignore", "/mnt/s"}, "/mnt/s", nil},
		{[]string{"mount", "--options-source", "disable", "/mnt/s"}, "/mnt/s", nil},
		{[]string{"mount", "--target", "/mnt/s", "--source", "spoolfs", "-o", "dev"}, "/mnt/s", []string{"dev"}},
		{[]string{"mount", "-L", "label", "/mnt/s"}, "/mnt/s", []string{"size=1G", "suid"}},
		{[]string{"mount", "/mnt/other"}, "/mnt/other", nil},
		{[]string{"mount", "-o"}, "/mnt/s", []string{"size=1G", "suid"}},
		{[]string{"mount", "--", "spoolfs", "/mnt/s"}, "/mnt/s", nil},
		{[]string{"mount"}, "/mnt/s", []string{"size=1G", "suid"}},
	}
	for _, c := range cases {
		if got := mountOptions(c.argv, c.dir, readFile); !slices.Equal(got, c.want) {
			t.Errorf("mountOptions(%q, %q) = %q, want %q", c.argv, c.dir, got, c.want)
		}
	}
	if got := mountOptions([]string{"mount", "/mnt/s"}, "/mnt/s", func(string) ([]byte, error) { return nil, errors.New("EACCES") }); got != nil {
		t.Errorf("unreadable fstab: %q, want nil", got)
	}
}
