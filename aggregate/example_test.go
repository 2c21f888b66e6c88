package aggregate_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/agora-commerce/agora/aggregate"
	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/eventstore/sqlite"
)

// A light switch that may be turned on only when it is off.
type light struct{ On bool }

type toggled struct{ On bool }

func Example() {
	dir, _ := os.MkdirTemp("", "agg")
	defer os.RemoveAll(dir)
	ctx := context.Background()
	store, _ := sqlite.Open(ctx, filepath.Join(dir, "es.db"), sqlite.Options{})
	defer store.Close()

	repo := aggregate.NewRepository(store, aggregate.Type[light, toggled]{
		Name:    "light",
		Initial: func() light { return light{} },
		Evolve:  func(s light, e toggled) light { return light(e) },
		Encode: func(e toggled) (eventstore.EventData, error) {
			b, err := json.Marshal(e)
			return eventstore.EventData{Type: "Toggled", Data: b}, err
		},
		Decode: func(r eventstore.Record) (toggled, error) {
			var e toggled
			return e, json.Unmarshal(r.Data, &e)
		},
		SnapshotEvery: 100,
		StateVersion:  1,
	})
	turnOn := func(l aggregate.Loaded[light]) ([]toggled, error) {
		if l.State.On {
			return nil, errors.New("already on")
		}
		return []toggled{{On: true}}, nil
	}
	res, err := repo.Handle(ctx, "kitchen", eventstore.Metadata{}, turnOn)
	fmt.Println(res.State.On, res.Version, err)
	_, err = repo.Handle(ctx, "kitchen", eventstore.Metadata{}, turnOn)
	fmt.Println(err)
	// Output:
	// true 1 <nil>
	// already on
}
