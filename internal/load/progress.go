package load

import (
	"fmt"
	"time"

	"github.com/agora-commerce/agora/internal/progress"
)

// showProgress shows a run's progress until the returned stop: a live bar
// on a terminal, a plain line every Config.Interval otherwise (package
// progress).
func showProgress(cfg Config, st *stats, start time.Time) (stop func()) {
	if cfg.Progress == nil {
		return func() {}
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
	// The bar runs over the duration in milliseconds, or over the
	// requests.
	opts := progress.Options{Name: "load", Terminal: cfg.Terminal, Interval: cfg.Interval}
	if cfg.Requests > 0 {
		opts.Unit = "requests"
	}
	bar := progress.New(cfg.Progress, opts)
	set := func() {
		bar.Describe(line())
		if cfg.Requests > 0 {
			bar.Set(int(st.requests()), cfg.Requests)
		} else {
			bar.Set(int(time.Since(start).Milliseconds()), int(cfg.Duration.Milliseconds()))
		}
	}
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				bar.Finish()
				return
			case <-t.C:
				set()
			}
		}
	}()
	return func() {
		close(done)
		<-stopped
	}
}
