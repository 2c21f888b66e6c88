//go:build unix

// Package cputime reads the CPU time this process has used: the steadier
// measure of a benchmark's cost on a machine others share.
package cputime

import (
	"syscall"
	"time"
)

// Self is the CPU time (user and system) this process has used.
func Self() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
