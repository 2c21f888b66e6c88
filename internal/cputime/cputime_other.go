//go:build !unix

// Package cputime reads the CPU time this process has used: the steadier
// measure of a benchmark's cost on a machine others share.
package cputime

import "time"

// Self is 0 here: getrusage is unix-only.
func Self() time.Duration { return 0 }
