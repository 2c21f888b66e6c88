//go:build !unix

package bench

import "syscall"

// ownGroup leaves a spawned process's group as it is.
func ownGroup() *syscall.SysProcAttr { return nil }
