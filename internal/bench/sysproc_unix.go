//go:build unix

package bench

import "syscall"

// ownGroup puts a spawned process in a process group of its own, so that
// a Ctrl-C at the terminal reaches the benchmark only, which then stops
// its processes in order and removes their data.
func ownGroup() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
