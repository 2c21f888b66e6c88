package saga

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// Observer receives what an engine does, for metrics: the saga package
// keeps none of its own (Options.Observer). The engine calls it on its own
// goroutines, so its methods must be cheap and must not block.
type Observer interface {
	// Started reports that an instance of type typ began: the first
	// attempt at its first step (once per instance, even when Start is
	// called again or races itself; an instance without steps never
	// begins).
	Started(typ string)
	// Step reports one attempt at step of an instance of type typ — at
	// its compensation if compensation is set — that ended with outcome
	// after took.
	Step(typ, step string, compensation bool, outcome Outcome, took time.Duration)
	// Ended reports that an instance of type typ reached status
	// Completed, Compensated or Failed, took after it started. An
	// instance retried after Failed ends again.
	Ended(typ string, status Status, took time.Duration)
}

// Outcome is how one attempt at a step, or at its compensation, ended.
type Outcome string

// The outcomes of an attempt.
const (
	// OutcomeCompleted: the attempt succeeded.
	OutcomeCompleted Outcome = "completed"
	// OutcomeRejected: a business failure (Fail); the saga compensates.
	OutcomeRejected Outcome = "rejected"
	// OutcomeError: the attempt failed and is retried, unless the step
	// ran out of attempts.
	OutcomeError Outcome = "error"
	// OutcomeTimeout: the step's deadline passed during the attempt.
	OutcomeTimeout Outcome = "timeout"
)

// outcome classifies an attempt's error.
func outcome(err error, timedOut bool) Outcome {
	switch {
	case err == nil:
		return OutcomeCompleted
	case ReasonOf(err) != "":
		return OutcomeRejected
	case timedOut:
		return OutcomeTimeout
	}
	return OutcomeError
}

// observeStep reports an attempt at step i of st to the observer, if any.
func (e *Engine) observeStep(st *state, i int, compensation bool, err error, timedOut bool, began time.Time) {
	if e.opts.Observer == nil || i < 0 || i >= len(st.names) {
		return
	}
	e.opts.Observer.Step(st.typ, st.names[i], compensation, outcome(err, timedOut), time.Since(began))
}

// observeEnd reports to the observer, if any, the end of st that the
// events of types just recorded.
func (e *Engine) observeEnd(st *state, types []string) {
	if e.opts.Observer == nil {
		return
	}
	for _, t := range types {
		var status Status
		switch t {
		case evCompleted:
			status = Completed
		case evCompensated:
			status = Compensated
		case evFailed:
			status = Failed
		default:
			continue
		}
		e.opts.Observer.Ended(st.typ, status, time.Since(st.started))
	}
}

// Backlog is the unfinished instances of one type in one status.
type Backlog struct {
	// Type is the instances' type.
	Type string
	// Status is Started, Compensating or Failed.
	Status Status
	// Count is how many instances of Type are in Status.
	Count int
	// Oldest is when the one that has waited longest entered Status (zero
	// when Count is 0).
	Oldest time.Time
	// Deadline is the type's deadline: the sum of its steps' deadlines
	// (a step without one adds nothing); 0 when none has one.
	Deadline time.Duration
}

// unfinishedStatuses are the statuses Backlog reports.
var unfinishedStatuses = []Status{Started, Compensating, Failed}

// Backlog returns, for every type registered with e and each status an
// unfinished instance can be in (Started, Compensating, Failed), how many
// instances are in it and since when the oldest is — from the engine's
// index of instances, which follows the store closely. Types and statuses
// with no instance are reported with a zero Count, so that a metric of
// them exists from the start.
func (e *Engine) Backlog(ctx context.Context) ([]Backlog, error) {
	// The partial index of unfinished instances (createUnfinishedIndex)
	// keeps this query from scanning every instance ever run. The index's
	// Setup makes it; Backlog may run before the index's runner has, so it
	// makes sure too, once.
	e.mu.Lock()
	indexed := e.backlogIndexed
	e.mu.Unlock()
	if !indexed {
		if _, err := e.db.ExecContext(ctx, createUnfinishedIndex); err != nil {
			return nil, fmt.Errorf("saga: backlog: %w", err)
		}
		e.mu.Lock()
		e.backlogIndexed = true
		e.mu.Unlock()
	}
	rows, err := e.db.QueryContext(ctx, `SELECT type, status, COUNT(*), MIN(updated_at) FROM saga_instances
		WHERE `+isUnfinished+` GROUP BY type, status`)
	if err != nil {
		return nil, fmt.Errorf("saga: backlog: %w", err)
	}
	defer rows.Close()
	type key struct {
		typ    string
		status Status
	}
	found := map[key]Backlog{}
	for rows.Next() {
		var (
			b      Backlog
			status string
			oldest int64
		)
		if err := rows.Scan(&b.Type, &status, &b.Count, &oldest); err != nil {
			return nil, fmt.Errorf("saga: backlog: %w", err)
		}
		b.Status, b.Oldest = Status(status), time.Unix(0, oldest)
		found[key{b.Type, b.Status}] = b
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("saga: backlog: %w", err)
	}
	types := make([]string, 0, len(e.defs))
	for t := range e.defs {
		types = append(types, t)
	}
	slices.Sort(types)
	out := make([]Backlog, 0, len(types)*len(unfinishedStatuses))
	for _, t := range types {
		var deadline time.Duration
		for _, s := range e.defs[t].steps() {
			deadline += s.deadline
		}
		for _, status := range unfinishedStatuses {
			b, ok := found[key{t, status}]
			if !ok {
				b = Backlog{Type: t, Status: status}
			}
			b.Deadline = deadline
			out = append(out, b)
		}
	}
	return out, nil
}
