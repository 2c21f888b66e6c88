package server

import (
	"context"
	"net/http"

	"github.com/agora-commerce/agora/internal/demo"
	"github.com/agora-commerce/agora/internal/module"
	"github.com/agora-commerce/agora/internal/platform/httpapi"
)

// Demo is what the demo seed created or found: who can log in, and how.
type Demo = module.Demo

// Demo returns the demo users if the server seeded them (Config.SeedDemo).
func (s *Server) Demo() (Demo, bool) {
	if s.seeded == nil {
		return Demo{}, false
	}
	return *s.seeded, true
}

// seedDemo fills an empty platform: identity creates the demo tenant's
// users, then demo.Seed funds and stocks it through the API.
func (s *Server) seedDemo(ctx context.Context) error {
	for _, m := range s.mods {
		if m.SeedDemo == nil {
			continue
		}
		d, err := m.SeedDemo(ctx)
		if err != nil {
			return err
		}
		s.seeded = &d
		return demo.Seed(ctx, d, demo.InProcess(s.route))
	}
	return nil
}

// route is the in-process handler of a request to the platform's API:
// the route's service, behind its own guard, as through the gateway.
func (s *Server) route(r *http.Request) http.Handler {
	if rt, ok := s.routes.Match(r); ok {
		for _, svc := range s.services {
			if svc.name == rt.Cluster {
				return httpapi.RequestID(s.guard(svc))
			}
		}
	}
	return nil
}
