//go:build !unix

package gateway_test

import "time"

// cpuTime is unknown here: no cpu-ns/op is reported.
func cpuTime() time.Duration { return 0 }
