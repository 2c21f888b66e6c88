package app_test

import (
	"testing"
	"time"

	"github.com/agora-commerce/agora/internal/payments"
	"github.com/agora-commerce/agora/internal/payments/app"
	"github.com/agora-commerce/agora/internal/testenv"
	"github.com/agora-commerce/agora/money"
)

// FuzzAccountEvents decodes arbitrary stored data as each account event
// (transfers' legs included) and folds it into an account
// (testenv.FuzzEvents).
func FuzzAccountEvents(f *testing.F) {
	at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	usd := money.MustCurrency("USD")
	leg := func(key string, n int64) payments.TransferLeg {
		return payments.TransferLeg{Key: key, Reference: "order:o-1", Amount: money.New(n, usd), At: at}
	}
	testenv.FuzzEvents(f, app.AccountType(),
		[]string{payments.TypeAccountOpened, payments.TypeMoneyDeposited, payments.TypeMoneyWithdrawn, payments.TypeAccountClosed,
			payments.TypeTransferDebited, payments.TypeTransferCredited, payments.TypeTransferRefunded,
			payments.TypeTransferReversed, payments.TypeTransferDeclined, payments.TypeTransferVoided},
		[]payments.Event{payments.AccountOpened{AccountID: "acct-1", OwnerID: "c-1", Tenant: "demo", Currency: usd, InitialBalance: 1000},
			payments.MoneyDeposited{Amount: money.New(500, usd), At: at},
			payments.MoneyWithdrawn{Amount: money.New(200, usd), At: at},
			payments.TransferDebited(leg("t-1", 300)), payments.TransferRefunded(leg("t-1", 300)),
			payments.TransferCredited(leg("t-2", 50)), payments.TransferReversed(leg("t-2", 50)),
			payments.TransferDeclined(payments.TransferLeg{Key: "t-3", Reason: "insufficient_funds", At: at}),
			payments.TransferVoided(payments.TransferLeg{Key: "t-4", At: at}),
			payments.AccountClosed{At: at}}...)
}
