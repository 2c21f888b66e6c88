//go:build !unix

package bench

import "time"

// cpuTime is not measured here: getrusage is unix-only.
func cpuTime() time.Duration { return 0 }
