package app

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/payments"
	"github.com/agora-commerce/agora/internal/payments/partition"
	"github.com/agora-commerce/agora/internal/payments/paymentsapi"
	"github.com/agora-commerce/agora/internal/platform/auth"
	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/money"
	"github.com/agora-commerce/agora/saga"
)

// TransferSagaType is the saga type of a transfer between accounts.
const TransferSagaType = paymentsapi.TransferSagaType

// TransferData is a transfer saga's data.
type TransferData struct {
	// ID is the transfer's ID; the saga's ID is "transfer-" + ID.
	ID string `json:"id"`
	// From pays, To receives.
	From string `json:"from"`
	To   string `json:"to"`
	// Amount is what moves.
	Amount money.Money `json:"amount"`
}

// TransferSagaID is the saga instance of transfer id.
func TransferSagaID(id string) string { return paymentsapi.TransferSagaPrefix + id }

func (d TransferData) key() string { return "transfer:" + d.ID }

// legError turns a declined leg into the saga's business failure.
func legError(r LegResult, want payments.LegState) error {
	switch r.Leg.State {
	case want:
		return nil
	case payments.LegDeclined:
		return saga.Fail(r.Leg.Reason)
	}
	return saga.Fail(payments.ReasonCancelled)
}

// TransferSaga is the definition of a transfer: debit the source, credit
// the target; a declined credit gives the debit back. Money leaves one
// account and arrives at the other, or nothing moved.
func TransferSaga(s *Service) saga.Definition[TransferData] {
	// What a leg writes carries the tenant, user and trace context of the
	// request that asked for the transfer.
	meta := func(ctx context.Context, x *saga.Exec[TransferData]) eventstore.Metadata {
		m, _ := saga.MetadataFrom(ctx)
		m.CorrelationID, m.CausationID = cmp.Or(m.CorrelationID, x.SagaID), x.AttemptID()
		return m
	}
	return saga.Definition[TransferData]{
		Type: TransferSagaType,
		Steps: []saga.Step[TransferData]{
			{
				Name: "debit",
				Action: func(ctx context.Context, x *saga.Exec[TransferData]) error {
					d := x.Data
					r, err := s.Debit(ctx, meta(ctx, x), d.From, d.key(), "transfer:"+d.ID, d.Amount)
					if err != nil {
						return permanent(err)
					}
					return legError(r, payments.LegDebited)
				},
				Compensate: func(ctx context.Context, x *saga.Exec[TransferData]) error {
					_, err := s.Refund(ctx, meta(ctx, x), x.Data.From, x.Data.key(), "transfer:"+x.Data.ID)
					return err
				},
			},
			{
				Name: "credit",
				Action: func(ctx context.Context, x *saga.Exec[TransferData]) error {
					d := x.Data
					r, err := s.Credit(ctx, meta(ctx, x), d.To, d.key(), "transfer:"+d.ID, d.Amount)
					if err != nil {
						return permanent(err)
					}
					return legError(r, payments.LegCredited)
				},
				Compensate: func(ctx context.Context, x *saga.Exec[TransferData]) error {
					_, err := s.Reverse(ctx, meta(ctx, x), x.Data.To, x.Data.key(), "transfer:"+x.Data.ID)
					return err
				},
			},
		},
	}
}

// permanent makes a rule the account broke (not found, wrong currency) a
// business failure with its reason; anything else stays transient.
func permanent(err error) error {
	var e *errs.Error
	if errors.As(err, &e) && e.Code != errs.Internal && e.Code != errs.Unavailable && e.Code != errs.Timeout && e.Reason != "" {
		return saga.Failf(e.Reason, err)
	}
	return err
}

// Transfer is a transfer as the API shows it.
type Transfer struct {
	// ID is the transfer's ID.
	ID string `json:"id"`
	// Status is Pending, Completed or Failed (nothing moved).
	Status string `json:"status"`
	// Reason is why it failed.
	Reason string `json:"reason,omitempty"`
	// FromAccountID pays, ToAccountID receives.
	FromAccountID string `json:"from_account_id"`
	ToAccountID   string `json:"to_account_id"`
	// Amount is what moves.
	Amount money.Money `json:"amount"`
	// SagaID is the saga running it.
	SagaID string `json:"saga_id"`
}

// TransferFromSaga maps a transfer saga instance to a Transfer.
func TransferFromSaga(in saga.Instance, d TransferData) Transfer {
	t := Transfer{ID: d.ID, Status: "Pending", FromAccountID: d.From, ToAccountID: d.To, Amount: d.Amount, SagaID: in.ID}
	switch in.Status {
	case saga.Completed:
		t.Status = "Completed"
	case saga.Compensated:
		t.Status, t.Reason = "Failed", in.Reason
	}
	return t
}

// Transfers starts and reads transfers, each run as a saga on an engine
// where TransferSaga is registered: a partition's, chosen by the
// transfer's ID (the saga's events are its partition's).
type Transfers struct {
	svc     *Service
	engines []*saga.Engine
}

// NewTransfers returns the transfers of svc's accounts, run on the
// partitions' engines (one engine: no partitioning).
func NewTransfers(svc *Service, engines ...*saga.Engine) *Transfers {
	return &Transfers{svc: svc, engines: engines}
}

// PartitionOf is the partition whose engine runs transfer id.
func (t *Transfers) PartitionOf(id string) int { return partition.Of(id, len(t.engines)) }

// EngineOf is the engine that runs saga instance sagaID, a transfer's
// ("transfer-<id>").
func (t *Transfers) EngineOf(sagaID string) *saga.Engine {
	id, _ := strings.CutPrefix(sagaID, paymentsapi.TransferSagaPrefix)
	return t.engines[t.PartitionOf(id)]
}

// TransferRequest asks to move Amount From one account To another; ID
// (a UUID) makes it idempotent, empty for a new one.
type TransferRequest struct {
	ID       string
	From, To string
	Amount   Amount
}

// Errors of a transfer request.
var (
	ErrCurrencyMismatch = &errs.Error{Code: errs.Unprocessable, Reason: "currency_mismatch", Message: "both accounts and the amount must share one currency",
		Fields: []errs.FieldError{{Field: "amount.currency", Message: "must be both accounts' currency"}}}
	ErrNotPositive = &errs.Error{Code: errs.Unprocessable, Reason: "invalid_amount", Message: "the amount must be positive",
		Fields: []errs.FieldError{{Field: "amount.amount", Message: "must be greater than zero"}}}
	ErrTransferNotFound = &errs.Error{Code: errs.NotFound, Reason: "transfer_not_found", Message: "no such transfer"}
	ErrTransferIDReused = &errs.Error{Code: errs.Unprocessable, Reason: "transfer_id_reused", Message: "this transfer ID names another transfer",
		Fields: []errs.FieldError{{Field: "id", Message: "is another transfer's"}}}
)

// Start starts a transfer for c, who must see the paying account (else it
// does not exist); the receiving account is in the same tenant, both
// accounts and the amount share one currency, and the amount is
// positive. It returns the transfer, Pending, and the position written
// (in the log of partition t.PartitionOf(transfer's ID)).
// Starting it again with its ID returns it as it stands (position 0);
// the ID of another transfer is refused.
func (t *Transfers) Start(ctx context.Context, c Caller, meta eventstore.Metadata, r TransferRequest) (Transfer, uint64, error) {
	from, _, err := t.svc.Account(ctx, c, r.From)
	if err != nil {
		return Transfer{}, 0, err
	}
	to, _, err := t.svc.Get(ctx, r.To)
	if err != nil {
		return Transfer{}, 0, err
	}
	if tenantOf(to) != tenantOf(from) {
		return Transfer{}, 0, payments.ErrNotOpen // another tenant's account does not exist here
	}
	amount := r.Amount(from.Currency)
	switch {
	case amount.Currency != from.Currency || amount.Currency != to.Currency:
		return Transfer{}, 0, ErrCurrencyMismatch
	case !amount.IsPositive():
		return Transfer{}, 0, ErrNotPositive
	}
	if r.ID == "" {
		r.ID = uuid.Must(uuid.NewV7()).String()
	}
	d := TransferData{ID: r.ID, From: from.ID, To: to.ID, Amount: amount}
	engine := t.EngineOf(TransferSagaID(d.ID))
	pos, err := engine.Start(saga.WithMetadata(ctx, meta), TransferSagaType, TransferSagaID(d.ID), d)
	if err != nil {
		return Transfer{}, 0, err
	}
	if pos == 0 { // the ID was used before: the same transfer, or refused
		in, err := engine.Get(ctx, TransferSagaID(d.ID))
		if err != nil {
			return Transfer{}, 0, err
		}
		var was TransferData
		if in.Type != TransferSagaType || json.Unmarshal(in.Data, &was) != nil || was != d {
			return Transfer{}, 0, ErrTransferIDReused
		}
		return TransferFromSaga(in, was), 0, nil
	}
	return Transfer{ID: d.ID, Status: "Pending", FromAccountID: d.From, ToAccountID: d.To, Amount: d.Amount,
		SagaID: TransferSagaID(d.ID)}, pos, nil
}

// Get returns transfer id to c, who must see its paying account.
func (t *Transfers) Get(ctx context.Context, c Caller, id string) (Transfer, error) {
	in, err := t.EngineOf(TransferSagaID(id)).Get(ctx, TransferSagaID(id))
	if errors.Is(err, saga.ErrNotFound) || (err == nil && in.Type != TransferSagaType) {
		return Transfer{}, ErrTransferNotFound
	}
	if err != nil {
		return Transfer{}, err
	}
	var d TransferData
	if err := json.Unmarshal(in.Data, &d); err != nil {
		return Transfer{}, fmt.Errorf("transfer %s: %w", id, err)
	}
	if _, _, err := t.svc.Account(ctx, c, d.From); errors.Is(err, payments.ErrNotOpen) {
		return Transfer{}, ErrTransferNotFound
	} else if err != nil {
		return Transfer{}, err
	}
	return TransferFromSaga(in, d), nil
}

// tenantOf is an account's tenant: the default one if it was opened
// without one.
func tenantOf(a payments.Account) string {
	if a.Tenant == "" {
		return auth.DefaultTenant
	}
	return a.Tenant
}
