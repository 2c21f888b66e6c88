//go:build !linux

package bench

import "time"

// procCPU is not measured here: another process's CPU time is read from
// Linux's /proc.
func procCPU(int) (time.Duration, bool) { return 0, false }

// procRSSMB is not measured here: another process's memory is read from
// Linux's /proc.
func procRSSMB(int) (float64, bool) { return 0, false }

// machineCPU is not measured here: it is read from Linux's /proc/stat.
func machineCPU() (time.Duration, bool) { return 0, false }
