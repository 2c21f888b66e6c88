package paymentsapi

import (
	"time"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/platform/call"
	"github.com/agora-commerce/agora/money"
	"github.com/agora-commerce/agora/saga"
)

// PaymentRequest asks to pay for an order, or to refund its payment:
// Amount moves From the customer's account To the merchant's.
type PaymentRequest struct {
	Meta    eventstore.Metadata `json:"meta"`
	OrderID string              `json:"order_id"`
	From    string              `json:"from"`
	To      string              `json:"to"`
	Amount  money.Money         `json:"amount"`
}

// OpenAccountRequest asks to open the payments account of a new
// customer: Meta names the tenant and the user (the account's owner).
type OpenAccountRequest struct {
	Meta eventstore.Metadata `json:"meta"`
}

// AccountRequest names an account.
type AccountRequest struct {
	AccountID string `json:"account_id"`
}

// TransferSagaType is the saga type of a transfer between accounts; its
// data names the paying account ("from").
const TransferSagaType = "transfer"

// Reasons Pay refuses an order's payment with.
const (
	ReasonInsufficientFunds = "insufficient_funds"
	ReasonCancelled         = "cancelled"
)

// The calls payments answers.
var (
	// Pay captures an order's payment, once per order: refused with
	// reason "insufficient_funds" or "cancelled" (the order's payment
	// was refunded already), or another rule of the accounts.
	Pay = call.Command[PaymentRequest, call.None]("cmd.payments.pay", "payments")
	// Refund gives an order's payment back (nothing if none was made).
	Refund = call.Command[PaymentRequest, call.None]("cmd.payments.refund", "payments")
	// OpenAccount opens a customer's USD account, its ID derived from the
	// user's (a repeated call opens nothing new), and answers its ID.
	OpenAccount = call.Command[OpenAccountRequest, string]("cmd.payments.open-account", "payments")
	// AccountOwner answers whose an account is (404 if none).
	AccountOwner = call.Query[AccountRequest, call.Owner]("query.payments.account-owner", "payments")
)

// TransferSagaPrefix begins the ID of every transfer's saga
// ("transfer-<transfer ID>"): the sagas payments keeps.
const TransferSagaPrefix = "transfer-"

// SagaRequest names a saga payments runs (a transfer), for the platform's
// sagas API (ordering serves it): Meta is the request's, recorded by a
// retry.
type SagaRequest struct {
	ID   string              `json:"id"`
	Meta eventstore.Metadata `json:"meta"`
}

// Saga is a saga payments runs, as the sagas API shows it: the instance
// with what the wire would drop of it (its metadata and times).
type Saga struct {
	Instance  saga.Instance       `json:"instance"`
	Metadata  eventstore.Metadata `json:"metadata"`
	StartedAt time.Time           `json:"started_at"`
	UpdatedAt time.Time           `json:"updated_at"`
}

// The sagas payments keeps in its own store, asked by the sagas API:
// GetSaga answers 404 (saga_not_found) for one it does not run, RetrySaga
// 409 (saga_not_failed) for one that has not failed.
var (
	GetSaga   = call.Query[SagaRequest, Saga]("query.payments.saga", "payments")
	RetrySaga = call.Command[SagaRequest, call.None]("cmd.payments.retry-saga", "payments")
)
