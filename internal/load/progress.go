package load

import (
	"fmt"
	"time"

	"github.com/schollz/progressbar/v3"
)

// progress shows a run's progress until stop: a live bar on a terminal,
// a plain line every Config.Interval otherwise.
type progress struct {
	done    chan struct{}
	stopped chan struct{}
}

func startProgress(cfg Config, st *stats, start time.Time) *progress {
	p := &progress{done: make(chan struct{}), stopped: make(chan struct{})}
	if cfg.Progress == nil {
		close(p.stopped)
		return p
	}
	line := func() string {
		s := st.snapshot()
		secs := time.Since(start).Seconds()
		rps := 0.0
		if secs > 0 {
			rps = float64(s.requests) / secs
		}
		return fmt.Sprintf("%d req, %.0f req/s, %d errors, %d 429s, p50 %.1f ms, p99 %.1f ms",
			s.requests, rps, s.errors, s.throttled, ms(s.p50), ms(s.p99))
	}
	if !cfg.Terminal {
		go func() {
			defer close(p.stopped)
			t := time.NewTicker(cfg.Interval)
			defer t.Stop()
			for {
				select {
				case <-p.done:
					return
				case <-t.C:
					fmt.Fprintf(cfg.Progress, "load: %.0f s: %s\n", time.Since(start).Seconds(), line())
				}
			}
		}()
		return p
	}
	// The bar runs over the duration in milliseconds, or over the
	// requests.
	max := cfg.Duration.Milliseconds()
	opts := []progressbar.Option{
		progressbar.OptionSetWriter(cfg.Progress),
		progressbar.OptionSetWidth(20),
		progressbar.OptionSetPredictTime(false),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionThrottle(200 * time.Millisecond),
		progressbar.OptionShowDescriptionAtLineEnd(),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSetRenderBlankState(true),
	}
	if cfg.Requests > 0 {
		max = int64(cfg.Requests)
		opts = append(opts, progressbar.OptionShowCount())
	}
	bar := progressbar.NewOptions64(max, opts...)
	go func() {
		defer close(p.stopped)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-p.done:
				_ = bar.Finish()
				return
			case <-t.C:
				bar.Describe(line())
				if cfg.Requests > 0 {
					_ = bar.Set64(min(int64(st.requests()), max))
				} else {
					_ = bar.Set64(min(time.Since(start).Milliseconds(), max))
				}
			}
		}
	}()
	return p
}

// stop ends the display (the bar is cleared).
func (p *progress) stop() {
	select {
	case <-p.done:
	default:
		close(p.done)
	}
	<-p.stopped
}
