// Package inventorymod is the inventory context as a module: event-sourced
// stock per product and reservations per order, the inventory API, and the
// stock calls the checkout makes.
package inventorymod

import (
	"context"

	"github.com/agora-commerce/agora/internal/catalog/catalogapi"
	"github.com/agora-commerce/agora/internal/gateway/routes"
	"github.com/agora-commerce/agora/internal/inventory"
	"github.com/agora-commerce/agora/internal/inventory/api"
	"github.com/agora-commerce/agora/internal/inventory/app"
	"github.com/agora-commerce/agora/internal/inventory/inventoryapi"
	"github.com/agora-commerce/agora/internal/module"
	"github.com/agora-commerce/agora/internal/platform/call"
)

// Module declares the inventory module.
var Module = module.Def{Name: "inventory", Stream: module.EventsStream, Subjects: []string{"inventory.>"}, New: New}

// New builds the inventory module. A restock asks the catalog whether
// its product exists.
func New(ctx context.Context, p *module.Platform) (*module.Module, error) {
	svc := app.NewService(p.Store)
	m := &module.Module{
		Routes: api.New(svc, products(catalogapi.ProductExists.Bind(p.Calls)), p.Store).Register,
		// The gateway's order check asks for stock levels, public data.
		Internal: []*routes.Route{{Pattern: "GET " + inventoryapi.LevelsPath, Auth: routes.AuthNone}},
		Answers:  Answers(svc),
		Publish:  app.Publish,
		Service:  svc,
	}
	if p.Settings.CheckoutMode == module.Choreography {
		m.Consumers = append(m.Consumers, module.Reaction("inventory-checkout", app.ReactionSubjects, svc.Reactions()))
	}
	return m, nil
}

// products is the catalog as inventory sees it.
type products func(ctx context.Context, r catalogapi.ProductRequest) (bool, error)

func (f products) Exists(ctx context.Context, id string) (bool, error) {
	return f(ctx, catalogapi.ProductRequest{ProductID: id})
}

func lines(ls []inventoryapi.Line) []inventory.Line {
	out := make([]inventory.Line, len(ls))
	for i, l := range ls {
		out[i] = inventory.Line{ProductID: l.ProductID, Quantity: l.Quantity}
	}
	return out
}

// Answers are the calls inventory answers, on svc.
func Answers(svc *app.Service) []call.Answer {
	return []call.Answer{
		inventoryapi.Reserve.Answer(func(ctx context.Context, r inventoryapi.StockRequest) (call.None, error) {
			return call.None{}, svc.Reserve(ctx, r.Meta, r.OrderID, lines(r.Lines))
		}),
		inventoryapi.Release.Answer(func(ctx context.Context, r inventoryapi.StockRequest) (call.None, error) {
			return call.None{}, svc.Release(ctx, r.Meta, r.OrderID, lines(r.Lines))
		}),
		inventoryapi.Commit.Answer(func(ctx context.Context, r inventoryapi.StockRequest) (call.None, error) {
			return call.None{}, svc.Commit(ctx, r.Meta, r.OrderID)
		}),
	}
}
