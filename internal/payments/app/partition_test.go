package app_test

import (
	"testing"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/payments/app"
	"github.com/agora-commerce/agora/internal/payments/partition"
	"github.com/agora-commerce/agora/saga"
)

// The partition a stream is moved to (reshard) is the one the service
// and the transfers look in.
func TestStreamsLiveWhereTheServiceLooks(t *testing.T) {
	svc := app.NewService(make([]eventstore.Store, 5)...)
	tr := app.NewTransfers(svc, make([]*saga.Engine, 5)...)
	for _, id := range []string{"a", "acct-u1", "merchant", "0193"} {
		if partition.Of(partition.KeyOf(app.AccountType().StreamID(id)), 5) != svc.PartitionOf(id) {
			t.Errorf("account %s: the stream's partition is not the service's", id)
		}
		if partition.Of(partition.KeyOf(saga.StreamID(app.TransferSagaID(id))), 5) != tr.PartitionOf(id) {
			t.Errorf("transfer %s: the saga stream's partition is not the transfers'", id)
		}
	}
}
