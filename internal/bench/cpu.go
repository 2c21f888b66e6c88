package bench

import (
	"runtime"
	"time"

	"github.com/agora-commerce/agora/internal/cputime"
)

func numCPU() int { return runtime.NumCPU() }

// cpuTime is the CPU time this process has used.
func cpuTime() time.Duration { return cputime.Self() }
