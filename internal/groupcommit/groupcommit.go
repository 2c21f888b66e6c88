// Package groupcommit holds the batching policy the event stores' writers
// share: how long to keep collecting appends before committing them
// together.
package groupcommit

import "time"

// Request is a queued write; Size is how many events it carries.
type Request interface {
	// Size is how many events the request carries (at least 1).
	Size() int
}

// Group-commit timing. A commit costs about one fsync whatever its size,
// so a batch should hold every append that is about to arrive. After a
// commit, the appenders it released need a moment to return and send
// their next append; a writer that starts at once commits only the appends
// that queued meanwhile, and the appenders split into two alternating
// halves. So the writer lingers while some caller inside Append has not
// yet queued (inFlight counts them), re-checking every lingerTick, for at
// most lingerMax. A lone appender never waits.
const (
	lingerTick = 50 * time.Microsecond
	lingerMax  = 500 * time.Microsecond
)

// Collect adds queued requests to batch until it holds maxBatch events,
// or every caller inside Append (inFlight) is in it, or lingerMax passed.
func Collect[R Request](reqs <-chan R, batch []R, n, maxBatch int, inFlight func() int64) ([]R, int) {
	var deadline time.Time
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for n < maxBatch {
		select {
		case r := <-reqs:
			batch = append(batch, r)
			n += r.Size()
			continue
		default:
		}
		if int64(len(batch)) >= inFlight() {
			return batch, n
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(lingerMax)
		}
		wait := min(lingerTick, time.Until(deadline))
		if wait <= 0 {
			return batch, n
		}
		if timer == nil {
			timer = time.NewTimer(wait)
		} else {
			timer.Reset(wait)
		}
		select {
		case r := <-reqs:
			batch = append(batch, r)
			n += r.Size()
			if !timer.Stop() {
				<-timer.C
			}
		case <-timer.C:
		}
	}
	return batch, n
}
