// Package progress shows how far a long command has got: on a terminal,
// a bar redrawn in place (counts, rate, elapsed time, what it is doing);
// anywhere else (a file, a pipe, CI), a plain line every few seconds, so
// that a log stays readable. Every long command of the agora binary
// (the benchmarks, agora load, migrate split, payments reshard) shows its
// progress through one Bar.
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// DefaultInterval is how often a plain line is written by default.
const DefaultInterval = 2 * time.Second

// redraw is how often a live bar is redrawn when nothing changes (its
// elapsed time moves on).
const redraw = 250 * time.Millisecond

// IsTerminal reports whether w is a terminal, where a live bar can be
// drawn.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// Options configure a Bar.
type Options struct {
	// Name heads each plain line ("reshard", "bench gateway").
	Name string
	// Unit is what the count counts ("events", "orders"); empty shows no
	// counts (a bar over time, say), only the description.
	Unit string
	// Rate shows the count's rate per second.
	Rate bool
	// Terminal draws a live bar (see IsTerminal); otherwise plain lines.
	Terminal bool
	// Interval is how often a plain line is written (default
	// DefaultInterval); a count reaching its total writes one at once.
	Interval time.Duration
}

// Bar shows one command's progress on a writer. Its methods may be
// called from any goroutine; Finish ends it.
type Bar struct {
	w io.Writer
	o Options

	mu    sync.Mutex
	bar   *progressbar.ProgressBar // the live bar (terminal), nil before the first report
	done  int
	total int // <= 0: not known
	desc  string
	// restart: the next Set starts a new count (the unit changed).
	restart bool
	begun   time.Time // of the Bar: the plain lines' elapsed time
	count   time.Time // of the current count (a new total starts one): its rate
	ended   bool

	stop    chan struct{}
	stopped chan struct{}
}

// New starts a Bar on w (stderr, usually). Nothing shows before the first
// Set or Describe.
func New(w io.Writer, o Options) *Bar {
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	now := time.Now()
	b := &Bar{w: w, o: o, begun: now, count: now, stop: make(chan struct{}), stopped: make(chan struct{})}
	go b.tick()
	return b
}

// tick writes a plain line every Interval, or redraws the live bar, until
// Finish.
func (b *Bar) tick() {
	defer close(b.stopped)
	every := b.o.Interval
	if b.o.Terminal {
		every = redraw
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			b.mu.Lock()
			if b.o.Terminal {
				if b.bar != nil {
					_ = b.bar.RenderBlank()
				}
			} else if b.total > 0 || b.desc != "" {
				b.line()
			}
			b.mu.Unlock()
		}
	}
}

// Set reports done of total; total <= 0 is a count without a known end.
// A total other than the last, or a count going back, starts a new count
// (a new phase: its bar fills from empty, its rate is its own).
func (b *Bar) Set(done, total int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ended {
		return
	}
	if b.restart || total != b.total || done < b.done || (b.o.Terminal && b.bar == nil) {
		b.total, b.done, b.count, b.restart = total, 0, time.Now(), false
		b.newBar()
	}
	if total > 0 {
		done = min(done, total)
	}
	finished := done != b.done && total > 0 && done == total
	b.done = done
	if b.bar != nil {
		_ = b.bar.Set(done)
	} else if finished {
		b.line() // the count's end, whenever it comes
	}
}

// SetUnit changes what the count counts ("events", "orders"; empty: no
// count shown); the next Set starts a new count.
func (b *Bar) SetUnit(unit string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if unit != b.o.Unit {
		b.o.Unit, b.restart = unit, true
	}
}

// Describe says what the command is doing now ("round 3: caddy"); it
// shows from the first Set on.
func (b *Bar) Describe(desc string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ended {
		return
	}
	b.desc = desc
	if b.bar != nil {
		b.bar.Describe(desc)
	}
}

// Logf writes a line of its own (a result, a phase starting): above the
// live bar on a terminal, among the plain lines otherwise.
func (b *Bar) Logf(format string, args ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.bar != nil {
		_ = b.bar.Clear()
	}
	fmt.Fprintf(b.w, strings.TrimSuffix(format, "\n")+"\n", args...)
	if b.bar != nil && !b.ended {
		_ = b.bar.RenderBlank()
	}
}

// Finish ends the display: the live bar is cleared; no more plain lines.
func (b *Bar) Finish() {
	b.mu.Lock()
	if b.ended {
		b.mu.Unlock()
		return
	}
	b.ended = true
	if b.bar != nil {
		_ = b.bar.Clear()
	}
	b.mu.Unlock()
	close(b.stop)
	<-b.stopped
}

// newBar replaces the live bar with one for the current total (with mu
// held); nothing on plain output.
func (b *Bar) newBar() {
	if !b.o.Terminal {
		return
	}
	if b.bar != nil {
		_ = b.bar.Clear()
	}
	opts := []progressbar.Option{
		progressbar.OptionSetWriter(b.w),
		progressbar.OptionSetWidth(20),
		progressbar.OptionSetDescription(b.desc),
		progressbar.OptionShowDescriptionAtLineEnd(),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionSetPredictTime(b.o.Unit != "" && b.total > 0),
		progressbar.OptionThrottle(200 * time.Millisecond),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSetRenderBlankState(true),
		// No spinner of its own drawing from another goroutine: tick
		// redraws it.
		progressbar.OptionSetSpinnerChangeInterval(0),
	}
	if b.o.Unit != "" {
		opts = append(opts, progressbar.OptionShowCount())
		if b.o.Rate {
			opts = append(opts, progressbar.OptionShowIts(), progressbar.OptionSetItsString(b.o.Unit))
		}
	}
	max := b.total
	if max <= 0 {
		max = -1 // a spinner
	}
	b.bar = progressbar.NewOptions(max, opts...)
}

// line writes a plain line (with mu held): the name, the elapsed time,
// the count (and its rate), what is going on.
func (b *Bar) line() {
	now := time.Now()
	var s strings.Builder
	fmt.Fprintf(&s, "%s: %.0f s", b.o.Name, now.Sub(b.begun).Seconds())
	if b.o.Unit != "" && (b.total > 0 || b.done > 0) {
		if b.total > 0 {
			fmt.Fprintf(&s, ": %d of %d %s", b.done, b.total, b.o.Unit)
		} else {
			fmt.Fprintf(&s, ": %d %s", b.done, b.o.Unit)
		}
		if secs := now.Sub(b.count).Seconds(); b.o.Rate && secs > 0 {
			fmt.Fprintf(&s, " (%.0f/s)", float64(b.done)/secs)
		}
	}
	if b.desc != "" {
		s.WriteString(": " + b.desc)
	}
	fmt.Fprintln(b.w, s.String())
}
