//go:build linux

package bench

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"time"
)

// clockTicks is the unit of /proc's CPU times (USER_HZ): 100 a second
// on every architecture Linux exports them for.
const clockTicks = 100

// procCPU is the CPU time (user and system, every thread) process pid has
// used, from /proc/<pid>/stat; ok is false if it cannot be read.
func procCPU(pid int) (_ time.Duration, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	// "pid (comm) state ppid …": the command may hold spaces and
	// parentheses, so the fields are counted from the last ')'. utime and
	// stime are the stat's 14th and 15th fields: the 12th and 13th after
	// the command.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 13 {
		return 0, false
	}
	utime, err1 := strconv.ParseUint(string(f[11]), 10, 64)
	stime, err2 := strconv.ParseUint(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, true
}

// procRSSMB is process pid's resident memory in MB, from
// /proc/<pid>/statm; ok is false if it cannot be read.
func procRSSMB(pid int) (_ float64, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/statm", pid))
	if err != nil {
		return 0, false
	}
	var size, resident uint64
	if _, err := fmt.Sscan(string(b), &size, &resident); err != nil {
		return 0, false
	}
	return float64(resident*uint64(os.Getpagesize())) / (1 << 20), true
}

// machineCPU is the CPU time every process on the machine has used since
// it booted (all cores; idle and I/O wait left out), from /proc/stat; ok
// is false if it cannot be read.
func machineCPU() (_ time.Duration, ok bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, false
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := bytes.Fields(line)
	// cpu user nice system idle iowait irq softirq steal (guest time is
	// counted in user already).
	if len(f) < 9 || string(f[0]) != "cpu" {
		return 0, false
	}
	var busy uint64
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		v, err := strconv.ParseUint(string(f[i]), 10, 64)
		if err != nil {
			return 0, false
		}
		busy += v
	}
	return time.Duration(busy) * time.Second / clockTicks, true
}
