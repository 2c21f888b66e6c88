// Package api is the payments context's HTTP interface (open host
// service): the /api/v1/accounts endpoints of API.md.
package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/payments"
	"github.com/agora-commerce/agora/internal/payments/app"
	"github.com/agora-commerce/agora/internal/payments/partition"
	"github.com/agora-commerce/agora/internal/payments/readmodel"
	"github.com/agora-commerce/agora/internal/platform/auth"
	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/internal/platform/httpapi"
	"github.com/agora-commerce/agora/money"
)

// Handler serves the payments API. Each handler decodes, calls one
// application method with its caller, and encodes; who may see what is
// the application's rule.
type Handler struct {
	svc       *app.Service
	transfers *app.Transfers
	queries   *readmodel.Queries
	rm        httpapi.Waiter
}

// New returns the payments API on the given command service, transfers,
// read-model queries and the read model's waiter (for
// Agora-Min-Position: a LogWaiter of the partitions' logs).
func New(svc *app.Service, transfers *app.Transfers, q *readmodel.Queries, rm httpapi.Waiter) *Handler {
	return &Handler{svc: svc, transfers: transfers, queries: q, rm: rm}
}

// setPosition sets a write's Agora-Position: a token of the log of the
// partition it wrote to.
func setPosition(w http.ResponseWriter, k int, pos uint64) {
	httpapi.SetPositionIn(w, partition.Log(k), pos)
}

// Register adds the payments routes to mux.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/v1/accounts", h.open)
	mux.HandleFunc("GET /api/v1/accounts", h.list)
	mux.HandleFunc("GET /api/v1/accounts/{id}", h.get)
	mux.HandleFunc("POST /api/v1/accounts/{id}/deposits", h.deposit)
	mux.HandleFunc("POST /api/v1/accounts/{id}/withdrawals", h.withdraw)
	closeAccount := auth.Act("id", http.StatusOK,
		func(ctx context.Context, c *auth.Claims, meta eventstore.Metadata, id string) (readmodel.Summary, uint64, error) {
			res, err := h.svc.Close(ctx, c, meta, id)
			return fromResult(res), res.Position, err
		})
	mux.HandleFunc("POST /api/v1/accounts/{id}/close", func(w http.ResponseWriter, r *http.Request) {
		// Act writes the position as a token of the request's log: the
		// account's partition's.
		log := partition.Log(h.svc.PartitionOf(r.PathValue("id")))
		closeAccount(w, r.WithContext(httpapi.WithLog(r.Context(), log)))
	})
	mux.HandleFunc("GET /api/v1/accounts/{id}/events", h.events)
	mux.HandleFunc("POST /api/v1/transfers", h.transfer)
	mux.HandleFunc("GET /api/v1/transfers/{id}", auth.Read("id", func(ctx context.Context, c *auth.Claims, id string) (app.Transfer, error) {
		return h.transfers.Get(ctx, c, id)
	}))
}

// amount is a request amount: a Money object, or a bare integer of minor
// units in the account's currency.
type amount struct {
	set   bool
	money *money.Money
	minor int64
}

func (a *amount) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		return errs.Fields(errs.FieldError{Field: "amount", Message: "must not be null"})
	}
	a.set = true
	if len(b) > 0 && b[0] == '{' {
		var m money.Money
		if err := json.Unmarshal(b, &m); err != nil {
			return errs.Fields(errs.FieldError{Field: "amount", Message: err.Error()})
		}
		a.money = &m
		return nil
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return errs.Fields(errs.FieldError{Field: "amount", Message: `must be {"amount": <integer minor units>, "currency": "<ISO 4217>"} or an integer of minor units that fits in 64 bits`})
	}
	a.minor = n
	return nil
}

// in returns the amount in currency c (a bare integer takes c).
func (a amount) in(c money.Currency) money.Money {
	if a.money != nil {
		return *a.money
	}
	return money.New(a.minor, c)
}

// fromResult is a write's response: the account as the read model will
// show it once it catches up.
func fromResult(r app.Result) readmodel.Summary {
	a := r.Account
	tenant := a.Tenant
	if tenant == "" {
		tenant = auth.DefaultTenant
	}
	return readmodel.Summary{ID: a.ID, OwnerID: a.OwnerID, Tenant: tenant, Balance: a.BalanceMoney(), Status: a.Status.String(),
		LastActivity: a.LastActivity, TransactionCount: int64(a.Transactions), Version: r.Version, OpenedAt: a.OpenedAt}
}

func meta(r *http.Request) eventstore.Metadata { return auth.Metadata(r) }

type openRequest struct {
	ID             string  `json:"id"`
	OwnerID        string  `json:"owner_id"`
	Currency       *string `json:"currency"`
	InitialBalance amount  `json:"initial_balance"`
}

func (h *Handler) open(w http.ResponseWriter, r *http.Request) {
	var req openRequest
	if err := httpapi.Decode(w, r, &req); err != nil {
		httpapi.Error(w, r, err)
		return
	}
	var bad []errs.FieldError
	if fe := httpapi.ID("owner_id", req.OwnerID); fe != nil {
		bad = append(bad, *fe)
	}
	if req.ID != "" {
		if fe := httpapi.NewID("id", req.ID); fe != nil {
			bad = append(bad, *fe)
		}
	}
	var cur money.Currency
	if req.Currency == nil {
		bad = append(bad, errs.FieldError{Field: "currency", Message: "is required"})
	} else if c, err := money.ParseCurrency(*req.Currency); err != nil {
		bad = append(bad, errs.FieldError{Field: "currency", Message: "is not a known upper-case ISO 4217 code"})
	} else {
		cur = c
	}
	if len(bad) > 0 {
		httpapi.Error(w, r, errs.Fields(bad...))
		return
	}
	initial := money.New(0, cur)
	if req.InitialBalance.set {
		initial = req.InitialBalance.in(cur)
		if initial.Currency != cur {
			httpapi.Error(w, r, &errs.Error{Code: errs.Unprocessable, Reason: "currency_mismatch", Message: "initial_balance must be in the account's currency",
				Fields: []errs.FieldError{{Field: "initial_balance.currency", Message: "must equal currency"}}})
			return
		}
	}
	res, err := h.svc.Open(r.Context(), meta(r), app.OpenAccount{ID: req.ID, OwnerID: req.OwnerID, Initial: initial})
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	setPosition(w, res.Partition, res.Position)
	w.Header().Set("Location", "/api/v1/accounts/"+res.Account.ID)
	httpapi.JSON(w, http.StatusCreated, fromResult(res))
}

type amountRequest struct {
	Amount amount `json:"amount"`
}

type moneyCommand func(ctx context.Context, c app.Caller, m eventstore.Metadata, id string, amount app.Amount) (app.Result, error)

func (h *Handler) deposit(w http.ResponseWriter, r *http.Request) { h.move(w, r, h.svc.Deposit) }

func (h *Handler) withdraw(w http.ResponseWriter, r *http.Request) { h.move(w, r, h.svc.Withdraw) }

func (h *Handler) move(w http.ResponseWriter, r *http.Request, cmd moneyCommand) {
	id, err := httpapi.PathID(r, "id")
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	var req amountRequest
	if err := httpapi.Decode(w, r, &req); err != nil {
		httpapi.Error(w, r, err)
		return
	}
	if !req.Amount.set {
		httpapi.Error(w, r, errs.Fields(errs.FieldError{Field: "amount", Message: "is required"}))
		return
	}
	c, err := auth.Caller(r)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	res, err := cmd(r.Context(), c, meta(r), id, req.Amount.in) // a bare integer is in the account's currency
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	setPosition(w, res.Partition, res.Position)
	httpapi.JSON(w, http.StatusOK, fromResult(res))
}

func (h *Handler) get(w http.ResponseWriter, r *http.Request) {
	id, err := httpapi.PathID(r, "id")
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	c, err := auth.Caller(r)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	// The account as its stream says now: the answer reflects every
	// write acknowledged before the request, so reads of one account are
	// linearizable (the list, a read model, may lag). Agora-Min-Position
	// still waits for the read model, as every read's does.
	if err := httpapi.Consistent(r, h.rm); err != nil {
		httpapi.Error(w, r, err)
		return
	}
	a, v, err := h.svc.Account(r.Context(), c, id)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	httpapi.JSON(w, http.StatusOK, fromResult(app.Result{Account: a, Version: v}))
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request) {
	c, err := auth.Caller(r)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	if err := httpapi.Query(r, "status", "min_balance", "limit", "cursor"); err != nil {
		httpapi.Error(w, r, err)
		return
	}
	q := r.URL.Query()
	limit, err := httpapi.Limit(r)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	f := readmodel.Filter{Tenant: c.Tenant, Limit: limit, Cursor: q.Get("cursor")}
	if v := q.Get("status"); v != "" {
		st, err := payments.ParseStatus(v)
		if err != nil {
			httpapi.Error(w, r, err)
			return
		}
		f.Status = &st
	}
	if v := q.Get("min_balance"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			httpapi.Error(w, r, errs.Fields(errs.FieldError{Field: "min_balance", Message: "must be an integer of minor units"}))
			return
		}
		f.MinBalance = &n
	}
	if err := httpapi.Consistent(r, h.rm); err != nil {
		httpapi.Error(w, r, err)
		return
	}
	page, err := h.queries.List(r.Context(), f)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	httpapi.JSON(w, http.StatusOK, page)
}

type eventJSON struct {
	Position      uint64              `json:"position"`
	Version       uint64              `json:"version"`
	ID            string              `json:"id"`
	Type          string              `json:"type"`
	SchemaVersion int                 `json:"schema_version"`
	Data          json.RawMessage     `json:"data"`
	Metadata      eventstore.Metadata `json:"metadata"`
	RecordedAt    time.Time           `json:"recorded_at"`
}

func (h *Handler) events(w http.ResponseWriter, r *http.Request) {
	id, err := httpapi.PathID(r, "id")
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	if err := httpapi.Query(r, "limit", "cursor"); err != nil {
		httpapi.Error(w, r, err)
		return
	}
	limit, err := httpapi.Limit(r)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	c, err := auth.Caller(r)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	if _, _, err := h.svc.Account(r.Context(), c, id); err != nil {
		httpapi.Error(w, r, err)
		return
	}
	from := uint64(1)
	if c := r.URL.Query().Get("cursor"); c != "" {
		v, err := readmodel.DecodeCursor(c)
		n, perr := strconv.ParseUint(v, 10, 64)
		if err != nil || perr != nil || n == 0 {
			httpapi.Error(w, r, errs.Fields(errs.FieldError{Field: "cursor", Message: "is not a cursor this API issued"}))
			return
		}
		from = n
	}
	recs, err := h.svc.StoreOf(id).ReadStream(r.Context(), app.AccountType().StreamID(id), eventstore.StreamRead{From: from, Limit: limit + 1})
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	if len(recs) == 0 && from == 1 {
		httpapi.Error(w, r, payments.ErrNotOpen)
		return
	}
	out := struct {
		Items      []eventJSON `json:"items"`
		NextCursor string      `json:"next_cursor,omitempty"`
	}{Items: []eventJSON{}}
	if len(recs) > limit {
		recs = recs[:limit]
		out.NextCursor = readmodel.EncodeCursor(strconv.FormatUint(recs[limit-1].Version+1, 10))
	}
	for _, rec := range recs {
		out.Items = append(out.Items, eventJSON{Position: rec.Position, Version: rec.Version, ID: rec.ID.String(), Type: rec.Type,
			SchemaVersion: rec.SchemaVersion, Data: rec.Data, Metadata: rec.Metadata, RecordedAt: rec.RecordedAt})
	}
	httpapi.JSON(w, http.StatusOK, out)
}
