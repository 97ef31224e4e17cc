//go:build !windows

package main

import "syscall"

// umask returns the process's file mode creation mask.
func umask() int {
	mask := syscall.Umask(0)
	syscall.Umask(mask)
	return mask
}
