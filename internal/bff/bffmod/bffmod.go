// Package bffmod is the backends-for-frontends as a module: the web and
// mobile home pages, composed from the other contexts' APIs (instances
// from the registry), and the popularity counters behind their
// recommendations, fed by ordering's events.
package bffmod

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/agora-commerce/agora/internal/bff"
	"github.com/agora-commerce/agora/internal/module"
	"github.com/agora-commerce/agora/messaging"
)

// Module declares the BFF module.
var Module = module.Def{Name: "bff", New: New}

// New builds the BFF module.
func New(ctx context.Context, p *module.Platform) (*module.Module, error) {
	pop, err := bff.NewPopularity(ctx, p.DB, p.Logger)
	if err != nil {
		return nil, err
	}
	resolve := func(cluster string) (string, error) {
		in := p.Registry.Instances(cluster)
		if len(in) == 0 {
			return "", fmt.Errorf("bff: no instance of %s", cluster)
		}
		return in[rand.IntN(len(in))].URL, nil
	}
	return &module.Module{
		Routes: bff.New(resolve, pop, bff.Options{Client: p.Client}).Register,
		Consumers: []module.Consumer{{Consumer: messaging.Consumer{Name: "bff-popularity", Stream: module.EventsStream,
			Subjects: bff.Subjects}, Handle: pop.Handle}},
		Daemons: []func(context.Context) error{pop.Run},
		Service: pop,
	}, nil
}
