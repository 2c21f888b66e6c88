package ops

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/internal/platform/httpapi"
	"github.com/agora-commerce/agora/messaging"
)

// DeadLetters keeps the deliveries that consumers' handlers failed
// permanently (messaging.ErrPermanent), which the bus would otherwise
// drop: table dead_letters of the read-model database (the same SQL on
// SQLite and PostgreSQL). A message dead for one consumer more than once
// is one letter, brought up to date.
type DeadLetters struct {
	db  *sql.DB
	now func() time.Time
}

// NewDeadLetters returns the dead letters kept in db; call Setup once.
func NewDeadLetters(db *sql.DB) *DeadLetters { return &DeadLetters{db: db, now: time.Now} }

// Setup creates the table if it does not exist.
func (d *DeadLetters) Setup(ctx context.Context) error {
	if _, err := d.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS dead_letters (
		id            TEXT PRIMARY KEY,
		consumer      TEXT NOT NULL,
		message_id    TEXT NOT NULL,
		subject       TEXT NOT NULL,
		type          TEXT NOT NULL,
		tenant        TEXT NOT NULL,
		error         TEXT NOT NULL,
		attempts      INTEGER NOT NULL,
		at            BIGINT NOT NULL,
		data          TEXT NOT NULL,
		data_encoding TEXT NOT NULL,
		headers       TEXT NOT NULL)`); err != nil {
		return fmt.Errorf("ops: dead letters: %w", err)
	}
	if _, err := d.db.ExecContext(ctx, `CREATE INDEX IF NOT EXISTS dead_letters_tenant ON dead_letters (tenant, at)`); err != nil {
		return fmt.Errorf("ops: dead letters: %w", err)
	}
	return nil
}

// The encodings of a dead letter's data.
const (
	encJSON   = "json"   // a JSON document, shown as such
	encText   = "text"   // text, shown as a string
	encBase64 = "base64" // bytes, kept and shown in base64
)

// DeadLetter is a kept delivery, as the API shows it.
type DeadLetter struct {
	// ID identifies the letter.
	ID string `json:"id"`
	// Consumer is the consumer whose handler failed.
	Consumer string `json:"consumer"`
	// MessageID is the message's ID.
	MessageID string `json:"message_id"`
	// Subject is the message's subject.
	Subject string `json:"subject"`
	// Type is the message's type.
	Type string `json:"type"`
	// Error is the handler's error.
	Error string `json:"error"`
	// Attempts counts the deliveries to the consumer, redeliveries from
	// here included.
	Attempts int `json:"attempts"`
	// At is when the message died (RFC 3339, UTC).
	At string `json:"at"`
	// Data is the message's body: its JSON, or a string (base64 for
	// bytes that are not text).
	Data json.RawMessage `json:"data"`
	// Headers are the message's headers.
	Headers map[string]string `json:"headers"`

	tenant string
	raw    []byte
	at     int64
}

var deadSpace = uuid.MustParse("5d1f6a2e-8c4b-4f0e-9a77-3b2c1d0e9f18")

// clean makes s storable as text anywhere: valid UTF-8, no NUL.
func clean(s string) string {
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "")
}

// Record keeps d, which consumer's handler failed permanently with
// cause: the hook natsbus.Options.OnDead calls.
func (d *DeadLetters) Record(ctx context.Context, consumer string, del messaging.Delivery, cause error) error {
	id := uuid.NewSHA1(deadSpace, []byte(consumer+"\n"+del.ID))
	if del.ID == "" {
		var err error
		if id, err = uuid.NewV7(); err != nil {
			return err
		}
	}
	data, enc := string(del.Data), encText
	switch {
	case !utf8.Valid(del.Data) || strings.ContainsRune(data, 0):
		data, enc = base64.StdEncoding.EncodeToString(del.Data), encBase64
	case json.Valid(del.Data):
		enc = encJSON
	}
	headers := map[string]string{}
	for k, v := range del.Headers {
		headers[k] = v
	}
	h, err := json.Marshal(headers)
	if err != nil {
		return err
	}
	msg := "failed"
	if cause != nil {
		msg = cause.Error()
	}
	_, err = d.db.ExecContext(ctx, `INSERT INTO dead_letters
		(id, consumer, message_id, subject, type, tenant, error, attempts, at, data, data_encoding, headers)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
		ON CONFLICT (id) DO UPDATE SET error = excluded.error, attempts = excluded.attempts, at = excluded.at`,
		id.String(), clean(consumer), clean(del.ID), clean(del.Subject), clean(del.Type), clean(del.Headers[messaging.HeaderTenant]),
		clean(msg), max(del.Attempt, 1), d.now().UnixNano(), data, enc, string(h))
	if err != nil {
		return fmt.Errorf("ops: keep a dead letter: %w", err)
	}
	return nil
}

const letterColumns = `id, consumer, message_id, subject, type, tenant, error, attempts, at, data, data_encoding, headers`

func scanLetter(row interface{ Scan(...any) error }) (DeadLetter, error) {
	var (
		l              DeadLetter
		data, enc, hdr string
	)
	if err := row.Scan(&l.ID, &l.Consumer, &l.MessageID, &l.Subject, &l.Type, &l.tenant, &l.Error, &l.Attempts, &l.at, &data, &enc, &hdr); err != nil {
		return l, err
	}
	l.At = timestamp(time.Unix(0, l.at))
	if err := json.Unmarshal([]byte(hdr), &l.Headers); err != nil || l.Headers == nil {
		l.Headers = map[string]string{}
	}
	switch enc {
	case encJSON:
		l.raw, l.Data = []byte(data), json.RawMessage(data)
	case encBase64:
		l.raw, _ = base64.StdEncoding.DecodeString(data)
		l.Data, _ = json.Marshal(data)
	default:
		l.raw = []byte(data)
		l.Data, _ = json.Marshal(data)
	}
	return l, nil
}

// list returns the letters of tenants (of consumer, if set) after c,
// newest first, up to limit, and the cursor of the next page (nil at the
// end).
func (d *DeadLetters) list(ctx context.Context, tenants []string, consumer string, limit int, c *cursor) ([]DeadLetter, *cursor, error) {
	var q where
	q.in("tenant", tenants)
	if consumer != "" {
		q.eq("consumer", consumer)
	}
	q.before("at", "id", c)
	rows, err := d.db.QueryContext(ctx, `SELECT `+letterColumns+` FROM dead_letters WHERE `+q.String()+
		` ORDER BY at DESC, id DESC LIMIT `+q.arg(limit+1), q.args...)
	if err != nil {
		return nil, nil, fmt.Errorf("ops: list dead letters: %w", err)
	}
	defer rows.Close()
	out := []DeadLetter{}
	for rows.Next() {
		l, err := scanLetter(rows)
		if err != nil {
			return nil, nil, fmt.Errorf("ops: list dead letters: %w", err)
		}
		if len(out) == limit {
			last := out[len(out)-1]
			return out, &cursor{at: last.at, id: last.ID}, rows.Err()
		}
		out = append(out, l)
	}
	return out, nil, rows.Err()
}

// get returns letter id, if it is one of tenants'.
func (d *DeadLetters) get(ctx context.Context, tenants []string, id string) (DeadLetter, bool, error) {
	l, err := scanLetter(d.db.QueryRowContext(ctx, `SELECT `+letterColumns+` FROM dead_letters WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return l, false, nil
	}
	if err != nil {
		return l, false, fmt.Errorf("ops: dead letter: %w", err)
	}
	for _, t := range tenants {
		if l.tenant == t {
			return l, true, nil
		}
	}
	return l, false, nil
}

// counts returns how many letters of tenants each consumer has.
func (d *DeadLetters) counts(ctx context.Context, tenants []string) (map[string]int, error) {
	var q where
	q.in("tenant", tenants)
	rows, err := d.db.QueryContext(ctx, `SELECT consumer, COUNT(*) FROM dead_letters WHERE `+q.String()+` GROUP BY consumer`, q.args...)
	if err != nil {
		return nil, fmt.Errorf("ops: count dead letters: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var name string
		var n int
		if err := rows.Scan(&name, &n); err != nil {
			return nil, err
		}
		out[name] = n
	}
	return out, rows.Err()
}

type letterPage struct {
	Items      []DeadLetter `json:"items"`
	NextCursor string       `json:"next_cursor,omitempty"`
}

// deadLetters serves GET /api/v1/ops/dead-letters?consumer=&limit=&cursor=:
// the caller's tenant's dead letters (by the message's tenant header),
// the most recent first.
func (a *API) deadLetters(w http.ResponseWriter, r *http.Request) {
	c, ok := begin(w, r, "consumer", "limit", "cursor")
	if !ok {
		return
	}
	limit, cur, ok := paged(w, r)
	if !ok {
		return
	}
	consumer := r.URL.Query().Get("consumer")
	if err := text("consumer", consumer, 256); err != nil {
		httpapi.Error(w, r, err)
		return
	}
	if len(a.cfg.Logs) == 0 || a.cfg.DeadLetters == nil {
		httpapi.Error(w, r, errNotHere)
		return
	}
	items, next, err := a.cfg.DeadLetters.list(r.Context(), tenants(c.Tenant), consumer, limit, cur)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	page := letterPage{Items: items}
	if next != nil {
		page.NextCursor = next.String()
	}
	httpapi.JSON(w, http.StatusOK, page)
}

// redeliverTimeout bounds a redelivery's handler.
const redeliverTimeout = 25 * time.Second

// redeliver serves POST /api/v1/ops/dead-letters/{id}/redeliver: the
// letter's delivery goes to the handler of the consumer that failed it,
// in this process (no other subscriber of its subject sees it again).
// The handler succeeding deletes the letter (200); its failing keeps it,
// with the new error and attempt (409 redelivery_failed, the error its
// detail). A consumer this process does not run: 409 consumer_not_here.
func (a *API) redeliver(w http.ResponseWriter, r *http.Request) {
	c, ok := begin(w, r)
	if !ok {
		return
	}
	id, err := httpapi.PathID(r, "id")
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	if err := httpapi.EmptyBody(w, r); err != nil {
		httpapi.Error(w, r, err)
		return
	}
	if len(a.cfg.Logs) == 0 || a.cfg.DeadLetters == nil {
		httpapi.Error(w, r, errNotHere)
		return
	}
	ctx := r.Context()
	dl := a.cfg.DeadLetters
	l, ok, err := dl.get(ctx, tenants(c.Tenant), id)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	if !ok {
		httpapi.Error(w, r, errUnknown("dead_letter_not_found", "no such dead letter"))
		return
	}
	var handle messaging.Handler
	for _, cons := range a.cfg.Consumers {
		if cons.Name == l.Consumer && cons.Handle != nil {
			handle = cons.Handle
		}
	}
	if handle == nil {
		httpapi.Error(w, r, &errs.Error{Code: errs.Conflict, Reason: "consumer_not_here",
			Message: fmt.Sprintf("consumer %s does not run in this process", l.Consumer)})
		return
	}
	d := messaging.Delivery{Message: messaging.Message{ID: l.MessageID, Subject: l.Subject, Type: l.Type, Data: l.raw, Headers: l.Headers},
		Attempt: l.Attempts + 1}
	// The handler runs as the bus would run it: without the request's
	// values (its caller), and to its end if the client goes away.
	hctx, cancel := context.WithTimeout(a.cfg.Context, redeliverTimeout)
	herr := handle(hctx, d)
	cancel()
	if herr != nil {
		if _, err := dl.db.ExecContext(ctx, `UPDATE dead_letters SET error = $1, attempts = $2 WHERE id = $3`,
			clean(herr.Error()), d.Attempt, l.ID); err != nil {
			a.cfg.Logger.Warn("ops: record a failed redelivery", "dead_letter", l.ID, "err", err)
		}
		httpapi.Error(w, r, &errs.Error{Code: errs.Conflict, Reason: "redelivery_failed",
			Message: "the consumer's handler failed again: " + clean(herr.Error()), Err: herr})
		return
	}
	if _, err := dl.db.ExecContext(ctx, `DELETE FROM dead_letters WHERE id = $1`, l.ID); err != nil {
		httpapi.Error(w, r, fmt.Errorf("ops: delete a redelivered dead letter: %w", err))
		return
	}
	httpapi.JSON(w, http.StatusOK, map[string]string{"id": l.ID, "status": "redelivered"})
}
