// Package sysmem tells what memory the machine has: all of it (Physical,
// which --ram's percentages are of) and what can be had now without
// swapping (Available, which the cache filler keeps clear of). It reads;
// it holds nothing.
package sysmem
