package saga

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/projection"
)

var startSpace = uuid.MustParse("2b0c7a55-0e7e-4a51-9f0d-6c2b3f6a9e41")

// startID is the Started event's ID: the same for every Start of one
// instance, so a repeated Start is an idempotent re-append.
func startID(id string) uuid.UUID { return uuid.NewSHA1(startSpace, []byte(id)) }

// firstStepID is the ID of the first step's first StepStarted, which
// Start appends with Started.
func firstStepID(id string) uuid.UUID { return uuid.NewSHA1(startSpace, []byte(id+"/step-0")) }

// state is an instance folded from its events.
type state struct {
	id, typ string
	names   []string
	status  Status
	reason  string
	lastErr string
	data    json.RawMessage
	version uint64
	// meta is the metadata the instance started with (WithMetadata).
	meta eventstore.Metadata

	next           int   // steps completed, in order
	attempts       []int // action attempts per step
	firstTry       []time.Time
	completed      []bool
	uncertain      []bool // failed with an unknown outcome: compensate too
	compensated    []bool
	compAttempts   []int
	compBudgetFrom []int // compensation attempts before the last Retry
	// prestarted marks a step whose next attempt's start this engine has
	// already recorded (with the previous step's completion); in memory
	// only, so an engine that loads the instance after a crash counts
	// that attempt as spent and records a new one.
	prestarted []bool
	// ahead is the step that may have run unrecorded when the instance
	// was loaded (its predecessor started and not recorded as
	// completed), or -1; with Overlap it is compensated too.
	ahead int
	// pending carries the outcome of an append still being written
	// (appendAsync), or is nil.
	pending    chan error
	stepStatus []string
	stepErr    []string
	stepAt     []time.Time
	started    time.Time
	updated    time.Time
}

func (s *state) apply(typ string, ev event, at time.Time) {
	s.updated = at
	mark := func(i int, status string) {
		if i >= 0 && i < len(s.stepStatus) {
			s.stepStatus[i], s.stepAt[i] = status, at
		}
	}
	switch typ {
	case evStarted:
		n := len(ev.Steps)
		s.typ, s.names, s.data, s.status, s.started = ev.Type, ev.Steps, ev.Data, Started, at
		s.attempts, s.firstTry, s.completed, s.uncertain = make([]int, n), make([]time.Time, n), make([]bool, n), make([]bool, n)
		s.compensated, s.compAttempts, s.compBudgetFrom = make([]bool, n), make([]int, n), make([]int, n)
		s.prestarted = make([]bool, n)
		s.stepStatus, s.stepErr, s.stepAt = make([]string, n), make([]string, n), make([]time.Time, n)
		for i := range s.stepStatus {
			s.stepStatus[i] = "Pending"
		}
	case evStepStarted:
		s.attempts[ev.Step] = ev.Attempt
		if s.firstTry[ev.Step].IsZero() {
			s.firstTry[ev.Step] = at
		}
		mark(ev.Step, "Running")
	case evStepCompleted:
		s.completed[ev.Step] = true
		s.next = ev.Step + 1
		if len(ev.Data) > 0 {
			s.data = ev.Data
		}
		mark(ev.Step, "Completed")
	case evStepFailed:
		s.stepErr[ev.Step] = ev.Error
		if ev.Uncertain {
			s.uncertain[ev.Step] = true
		}
		mark(ev.Step, "Failed")
	case evCompensating:
		s.status, s.reason = Compensating, ev.Reason
		if ev.Uncertain && ev.Step >= 0 && ev.Step < len(s.uncertain) {
			s.uncertain[ev.Step] = true // aborted while the step ran
		}
	case evStepCompensating:
		s.compAttempts[ev.Step] = ev.Attempt
		mark(ev.Step, "Compensating")
	case evStepCompensated:
		s.compensated[ev.Step] = true
		mark(ev.Step, "Compensated")
	case evCompensationError:
		s.stepErr[ev.Step], s.lastErr = ev.Error, ev.Error
		mark(ev.Step, "CompensationFailed")
	case evCompleted:
		s.status = Completed
	case evCompensated:
		s.status = Compensated
	case evFailed:
		s.status = Failed
	case evRetried:
		s.status, s.lastErr = Compensating, ""
		copy(s.compBudgetFrom, s.compAttempts)
	}
}

// settle waits for the append in flight, if any, and returns its error.
func (s *state) settle() error {
	if s.pending == nil {
		return nil
	}
	err := <-s.pending
	s.pending = nil
	return err
}

// toCompensate returns the last step still to undo, or -1.
func (s *state) toCompensate(steps []stepInfo) int {
	for j := len(steps) - 1; j >= 0; j-- {
		maybeRan := s.completed[j] || s.uncertain[j] ||
			(j == s.ahead && steps[j].overlap && !s.completed[j-1])
		if maybeRan && !s.compensated[j] && steps[j].compensable {
			return j
		}
	}
	return -1
}

func (s *state) view() Instance {
	in := Instance{ID: s.id, Type: s.typ, Status: s.status, Reason: s.reason, Data: s.data, Version: s.version, Metadata: s.meta,
		StartedAt: s.started, UpdatedAt: s.updated}
	if s.status == Failed {
		in.Error = s.lastErr
	}
	in.Steps = make([]StepView, len(s.names))
	for i, n := range s.names {
		v := StepView{Name: n, Status: s.stepStatus[i], Attempts: s.attempts[i], Error: s.stepErr[i]}
		if s.compAttempts[i] > 0 {
			v.Attempts = s.compAttempts[i]
		}
		if s.stepStatus[i] == "Pending" && s.status != Started {
			v.Status = "Skipped"
		}
		if !s.stepAt[i].IsZero() {
			at := s.stepAt[i]
			v.At = &at
		}
		in.Steps[i] = v
	}
	return in
}

// indexProjection keeps saga_instances: every instance's type, status
// and tenant (its Started event's metadata's; "" when it had none), so
// an engine finds the unfinished ones when it starts and operators list
// their tenant's.
type indexProjection struct{}

func (indexProjection) Name() string { return "saga.instances" }

// Index returns the runner of the engine's index of instances (table
// saga_instances), for operators: its lag, a rebuild.
func (e *Engine) Index() *projection.Runner { return e.index }

func (p indexProjection) Setup(ctx context.Context, db *sql.DB) error {
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS saga_instances (
		id         TEXT PRIMARY KEY,
		type       TEXT NOT NULL,
		status     TEXT NOT NULL,
		updated_at BIGINT NOT NULL,
		tenant     TEXT NOT NULL DEFAULT '')`); err != nil {
		return err
	}
	// The table of an earlier release has no tenant: add the column and
	// replay the log from the start (the runner's Init loads the
	// checkpoint after Setup), so that every instance gets its tenant.
	if _, err := db.ExecContext(ctx, `SELECT tenant FROM saga_instances WHERE 1 = 0`); err != nil {
		if _, err := db.ExecContext(ctx, `ALTER TABLE saga_instances ADD COLUMN tenant TEXT NOT NULL DEFAULT ''`); err != nil {
			return fmt.Errorf("saga index: add the tenant column: %w", err)
		}
		if _, err := db.ExecContext(ctx, `DELETE FROM projection_checkpoints WHERE name = $1`, p.Name()); err != nil {
			return fmt.Errorf("saga index: replay for the tenant column: %w", err)
		}
	}
	if _, err := db.ExecContext(ctx, `CREATE INDEX IF NOT EXISTS saga_instances_tenant ON saga_instances (tenant, updated_at)`); err != nil {
		return err
	}
	_, err := db.ExecContext(ctx, createUnfinishedIndex)
	return err
}

// createUnfinishedIndex makes the partial index of the unfinished
// instances: the sweep, an engine's start and the backlog ask for those
// only, and with it they read as many rows as there are unfinished
// instances, not every instance ever run. Its condition is written out
// (no parameters) so that a query repeating it can use it, on SQLite and
// PostgreSQL alike.
const createUnfinishedIndex = `CREATE INDEX IF NOT EXISTS saga_instances_unfinished ON saga_instances (type, status, updated_at)
	WHERE status IN ('Started', 'Compensating', 'Failed')`

// isUnfinished is the partial index's condition, for the queries that use it.
const isUnfinished = `status IN ('Started', 'Compensating', 'Failed')`

func (indexProjection) Reset(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, `DELETE FROM saga_instances`)
	return err
}

func (indexProjection) Apply(ctx context.Context, tx *sql.Tx, batch []eventstore.Record) error {
	for _, r := range batch {
		if len(r.StreamID) < 5 || r.StreamID[:5] != "saga-" {
			continue
		}
		id := r.StreamID[5:]
		var status Status
		switch r.Type {
		case evStarted:
			var ev event
			if err := json.Unmarshal(r.Data, &ev); err != nil {
				return err
			}
			// A replay (for the tenant column) finds the instance there.
			if _, err := tx.ExecContext(ctx, `INSERT INTO saga_instances (id, type, status, updated_at, tenant) VALUES ($1, $2, $3, $4, $5)
				ON CONFLICT (id) DO UPDATE SET tenant = excluded.tenant`, id, ev.Type, string(Started), r.RecordedAt.UnixNano(), r.Metadata.Tenant); err != nil {
				return fmt.Errorf("saga index: %w", err)
			}
			continue
		case evCompensating, evRetried:
			status = Compensating
		case evCompleted:
			status = Completed
		case evCompensated:
			status = Compensated
		case evFailed:
			status = Failed
		default:
			continue
		}
		if _, err := tx.ExecContext(ctx, `UPDATE saga_instances SET status = $1, updated_at = $2 WHERE id = $3`,
			string(status), r.RecordedAt.UnixNano(), id); err != nil {
			return fmt.Errorf("saga index: %w", err)
		}
	}
	return nil
}

// stalled lists unfinished instances whose last status change is older
// than before. (The index records status changes, not steps, so a
// healthy long saga is listed too: its second driver only costs work.)
func stalled(ctx context.Context, db *sql.DB, before time.Time, types []string) ([]string, error) {
	where, args := ofTypes(types, before.UnixNano())
	return ids(ctx, db, `SELECT id FROM saga_instances WHERE `+isUnfinished+` AND `+isRunning+` AND updated_at < $1`+where+` ORDER BY updated_at LIMIT 1000`, args...)
}

// unfinished lists the instances an engine must resume (Started or
// Compensating: a Failed one waits for an operator).
func unfinished(ctx context.Context, db *sql.DB, types []string) ([]string, error) {
	where, args := ofTypes(types)
	return ids(ctx, db, `SELECT id FROM saga_instances WHERE `+isUnfinished+` AND `+isRunning+where+` ORDER BY updated_at`, args...)
}

// isRunning picks, among the unfinished, the instances an engine drives
// (the Failed wait for an operator): with the type, a seek in the
// partial index, whatever the number of Failed ones.
const isRunning = `status IN ('Started', 'Compensating')`

// ofTypes is the condition limiting a query to types (none: all), with
// its arguments after args.
func ofTypes(types []string, args ...any) (string, []any) {
	if len(types) == 0 {
		return "", args
	}
	marks := make([]string, len(types))
	for i, t := range types {
		args = append(args, t)
		marks[i] = fmt.Sprintf("$%d", len(args))
	}
	return " AND type IN (" + strings.Join(marks, ", ") + ")", args
}

// ids runs a query of instance IDs.
func ids(ctx context.Context, db *sql.DB, query string, args ...any) ([]string, error) {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("saga: list instances: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// Indexed is one instance in the engine's index (table saga_instances).
type Indexed struct {
	// ID is the instance's ID.
	ID string
	// Type is its definition's type.
	Type string
	// Status is its status.
	Status Status
	// Tenant is its Started event's tenant ("" when it had none).
	Tenant string
	// UpdatedAt is when its status last changed.
	UpdatedAt time.Time
}

// Index reads the index of instances an engine keeps in a database, for
// tools that run no engine (an audit of a running platform).
type Index struct{ db *sql.DB }

// ReadIndex returns the index kept in db.
func ReadIndex(db *sql.DB) Index { return Index{db: db} }

// EachInstance calls fn with every instance in the index.
func (x Index) EachInstance(ctx context.Context, fn func(Indexed) error) error {
	rows, err := x.db.QueryContext(ctx, `SELECT id, type, status, tenant, updated_at FROM saga_instances ORDER BY updated_at, id`)
	if err != nil {
		return fmt.Errorf("saga: read the index: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			in      Indexed
			status  string
			updated int64
		)
		if err := rows.Scan(&in.ID, &in.Type, &status, &in.Tenant, &updated); err != nil {
			return fmt.Errorf("saga: read the index: %w", err)
		}
		in.Status, in.UpdatedAt = Status(status), time.Unix(0, updated).UTC()
		if err := fn(in); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("saga: read the index: %w", err)
	}
	return nil
}
