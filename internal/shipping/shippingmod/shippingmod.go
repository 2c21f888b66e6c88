// Package shippingmod is the shipping context as a module: shipments
// booked with the carrier behind an anti-corruption layer, the shipment
// API, and the shipping calls the checkout makes.
package shippingmod

import (
	"context"
	"errors"

	"github.com/agora-commerce/agora/internal/module"
	"github.com/agora-commerce/agora/internal/ordering/orderingapi"
	"github.com/agora-commerce/agora/internal/platform/call"
	"github.com/agora-commerce/agora/internal/shipping"
	"github.com/agora-commerce/agora/internal/shipping/api"
	"github.com/agora-commerce/agora/internal/shipping/app"
	"github.com/agora-commerce/agora/internal/shipping/carrier"
	"github.com/agora-commerce/agora/internal/shipping/shippingapi"
)

// Module declares the shipping module.
var Module = module.Def{Name: "shipping", Stream: module.EventsStream, Subjects: []string{"shipping.>"}, New: New}

// New builds the shipping module on the platform's carrier (a perfect
// simulated one if none). Who may see a shipment is asked of ordering.
func New(ctx context.Context, p *module.Platform) (*module.Module, error) {
	sim := p.Settings.Carrier
	if sim == nil {
		sim = carrier.NewSim(0, 0)
	}
	svc := app.NewService(p.Store, app.Guard(app.Parcelo{Sim: sim}, app.GuardOptions{Logger: p.Logger}))
	owner := orderingapi.OrderOwner.Bind(p.Calls)
	orders := call.OwnerFunc(func(ctx context.Context, id string) (string, string, error) {
		o, err := owner(ctx, orderingapi.OrderRequest{OrderID: id})
		return o.Tenant, o.ID, err
	})
	m := &module.Module{
		Routes:  api.New(svc, orders).Register,
		Answers: Answers(svc),
		Publish: app.Publish,
		Service: svc,
	}
	if p.Settings.CheckoutMode == module.Choreography {
		h, err := svc.Reactions(ctx, p.DB)
		if err != nil {
			return nil, err
		}
		m.Consumers = append(m.Consumers, module.Reaction("shipping-checkout", app.ReactionSubjects, h))
	}
	return m, nil
}

// Answers are the calls shipping answers, on svc.
func Answers(svc *app.Service) []call.Answer {
	return []call.Answer{
		shippingapi.Arrange.Answer(func(ctx context.Context, r shippingapi.ShipmentRequest) (call.None, error) {
			if r.Address == nil {
				return call.None{}, errors.New("shipping: arrange without an address")
			}
			return call.None{}, svc.Arrange(ctx, r.Meta, r.OrderID, shipping.Address(*r.Address))
		}),
		shippingapi.Cancel.Answer(func(ctx context.Context, r shippingapi.ShipmentRequest) (call.None, error) {
			return call.None{}, svc.Cancel(ctx, r.Meta, r.OrderID)
		}),
	}
}
