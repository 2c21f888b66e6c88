package postgres_test

import (
	"context"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"testing"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/eventstore/postgres"
	"github.com/agora-commerce/agora/eventstore/storetest"
	"github.com/agora-commerce/agora/internal/testenv"
)

// openSchema opens a store in a fresh schema dropped when the test ends.
func openSchema(t testing.TB, opts postgres.Options) (string, postgres.Options) {
	url := testenv.PostgresURL(t)
	opts.Schema = fmt.Sprintf("es_test_%d", rand.Uint64())
	t.Cleanup(func() {
		if err := postgres.DropSchema(context.Background(), url, opts.Schema); err != nil {
			t.Errorf("drop schema: %v", err)
		}
	})
	return url, opts
}

func open(t testing.TB, url string, opts postgres.Options) *postgres.Store {
	s, err := postgres.Open(context.Background(), url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) eventstore.Store {
		url, opts := openSchema(t, postgres.Options{})
		return open(t, url, opts)
	}, storetest.Options{})
}

// TestConformanceWithoutGroupCommit runs the suite with one transaction
// per append, the naive mode the benchmark compares against.
func TestConformanceWithoutGroupCommit(t *testing.T) {
	storetest.Run(t, func(t *testing.T) eventstore.Store {
		url, opts := openSchema(t, postgres.Options{MaxBatch: 1})
		return open(t, url, opts)
	}, storetest.Options{TortureEvents: 10_000})
}

// twoProcesses is one logical store served by two Store instances on the
// same schema, as two processes would be: appends are spread over both,
// reads go to the first. Its transactions commit in any interleaving, so
// the torture test on it checks that no late commit is skipped.
type twoProcesses struct {
	eventstore.Store
	other eventstore.Store
}

func (p twoProcesses) Append(ctx context.Context, stream string, exp eventstore.ExpectedVersion, evs ...eventstore.EventData) (eventstore.AppendResult, error) {
	h := fnv.New32a()
	h.Write([]byte(stream))
	if h.Sum32()%2 == 0 {
		return p.other.Append(ctx, stream, exp, evs...)
	}
	return p.Store.Append(ctx, stream, exp, evs...)
}

func TestTortureAcrossTwoProcesses(t *testing.T) {
	url, opts := openSchema(t, postgres.Options{})
	a, b := open(t, url, opts), open(t, url, opts)
	storetest.Torture(t, twoProcesses{Store: a, other: b}, 64, 50_000)
}
