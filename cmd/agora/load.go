package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/agora-commerce/agora/internal/identity/app"
	"github.com/agora-commerce/agora/internal/load"
	"github.com/agora-commerce/agora/internal/progress"
)

// loadUsage heads `agora load -h`.
const loadUsage = `usage: agora load [flags] URL

Virtual customers drive the platform at URL (embedded or distributed,
local or not) through its public API: they register, fund their
accounts, then browse, view products, place and follow orders, check
their orders and transfer money, with the odds of --mix, for --duration
or --requests. At the end, a table per scenario (or --json); the exit
status is 1 past --max-errors. Ctrl-C stops and still reports.

flags:`

// parseLoad reads `agora load`'s flags and URL (flags may come after it).
func (m *Main) parseLoad(args []string) error {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), loadUsage)
		fs.PrintDefaults()
	}
	c := &m.load
	fs.IntVar(&c.Users, "users", 8, "virtual users, each a customer of its own")
	fs.DurationVar(&c.Duration, "duration", 30*time.Second, "how long the users start scenarios")
	fs.IntVar(&c.Requests, "requests", 0, "stop after this many requests instead of after --duration")
	fs.BoolVar(&m.asJSON, "json", false, "print one JSON object instead of the table")
	fs.IntVar(&c.MaxErrors, "max-errors", 0, "exit with status 1 when the run has more errors than this (-1: never)")
	mix := fs.String("mix", load.DefaultMix, "scenarios' weights, name=weight,… of "+fmt.Sprint(load.Scenarios)+"; those not named get 0")
	fs.Uint64Var(&c.Seed, "seed", 0, "seed of the users' scenario picks (0: a random one, printed in the report)")
	fs.StringVar(&c.Tenant, "tenant", env("AGORA_LOAD_TENANT", "demo"), "tenant the customers register in (AGORA_LOAD_TENANT)")
	fs.StringVar(&c.AdminEmail, "admin-email", env("AGORA_LOAD_ADMIN_EMAIL", app.DemoAdminEmail), "an admin or merchant of the tenant: opens the customers' second accounts and restocks (AGORA_LOAD_ADMIN_EMAIL)")
	fs.StringVar(&c.AdminPassword, "admin-password", env("AGORA_LOAD_ADMIN_PASSWORD", app.DemoAdminPassword), "that admin's password (AGORA_LOAD_ADMIN_PASSWORD)")
	fs.BoolVar(&c.Restock, "restock", true, fmt.Sprintf("top every product's stock up to %d before the run (as the admin)", load.RestockTo))
	fs.Float64Var(&c.Refusals, "refusals", 0.05, "fraction of orders and transfers made over the balance, whose refusal is expected (not an error)")
	fs.DurationVar(&c.Grace, "grace", 30*time.Second, "after the end, how long the scenarios under way may take to finish")
	fs.DurationVar(&c.Interval, "interval", 5*time.Second, "how often a progress line is printed when stderr is not a terminal")
	rest, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return fmt.Errorf("load: want one URL, got %q (agora load -h)", rest)
	}
	c.URL = rest[0]
	var set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["duration"] && set["requests"] {
		return errors.New("load: give --duration or --requests, not both")
	}
	if c.Requests > 0 {
		c.Duration = 0
	} else if c.Requests < 0 {
		return fmt.Errorf("load: --requests %d: want at least 1", c.Requests)
	} else if c.Duration <= 0 {
		return fmt.Errorf("load: --duration %s: want a positive duration", c.Duration)
	}
	if c.Users < 1 {
		return fmt.Errorf("load: --users %d: want at least 1", c.Users)
	}
	if c.Refusals < 0 || c.Refusals > 1 {
		return fmt.Errorf("load: --refusals %v: want a fraction from 0 to 1", c.Refusals)
	}
	if c.Mix, err = load.ParseMix(*mix); err != nil {
		return fmt.Errorf("load: --%w", err)
	}
	if c.Seed == 0 {
		c.Seed = rand.Uint64()
	}
	return nil
}

// runLoad runs `agora load` and prints its report, also when the run was
// interrupted or had too many errors.
func (m *Main) runLoad(ctx context.Context) error {
	m.load.Progress = m.Stderr
	m.load.Terminal = progress.IsTerminal(m.Stderr)
	m.load.Log = m.logf
	rep, err := load.Run(ctx, m.load)
	if rep.Scenarios == nil {
		return err
	}
	var werr error
	if m.asJSON {
		werr = rep.WriteJSON(m.Stdout)
	} else {
		werr = rep.WriteTable(m.Stdout)
	}
	return errors.Join(err, werr)
}
