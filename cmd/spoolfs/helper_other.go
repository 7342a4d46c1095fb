//go:build !linux

package main

// writtenMountOptions: mount.fuse3, whose words helperArgs undoes, is
// Linux's; elsewhere there is nothing to put back.
func writtenMountOptions(dir string) []string { return nil }
