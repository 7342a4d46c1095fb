//go:build !linux

package fs

const extraCapabilities = 0
