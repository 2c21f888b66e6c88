package bffmod_test

import (
	"testing"

	"github.com/agora-commerce/agora/internal/bff/bffmod"
	"github.com/agora-commerce/agora/internal/module"
	"github.com/agora-commerce/agora/internal/module/moduletest"
	"github.com/agora-commerce/agora/internal/testenv"
)

func TestModule(t *testing.T) {
	store, db := testenv.SQLite(t)
	h := moduletest.Start(t, bffmod.Module, store, db, nil)
	m := h.Module
	if len(m.Consumers) != 1 || m.Consumers[0].Name != "bff-popularity" || m.Consumers[0].Stream != module.EventsStream || len(m.Daemons) != 1 {
		t.Fatalf("bff: consumers %+v, %d daemons", m.Consumers, len(m.Daemons))
	}
	// With no instance of any backend in the registry, the page still
	// answers, every section degraded.
	r := h.As("customer").Do("GET", "/bff/web/home", "")
	if r.Status != 200 {
		t.Fatalf("home: %d %s", r.Status, r.Raw)
	}
	if d, _ := r.Body["degraded"].([]any); len(d) == 0 {
		t.Fatalf("home with no backend: %s", r.Raw)
	}
}
