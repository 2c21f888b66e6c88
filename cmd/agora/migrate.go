package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"

	"github.com/agora-commerce/agora/internal/payments/partition"
	"github.com/agora-commerce/agora/internal/progress"
	"github.com/agora-commerce/agora/internal/reshard"
	"github.com/agora-commerce/agora/internal/server"
	"github.com/agora-commerce/agora/internal/split"
)

// parseMigrate reads `agora migrate split`'s flags.
func (m *Main) parseMigrate(args []string) error {
	if len(args) == 0 || args[0] != "split" {
		return fmt.Errorf("migrate: want 'agora migrate split --data DIR'")
	}
	fs := flag.NewFlagSet("migrate split", flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), `usage: agora migrate split [--data DIR | --postgres URL [--from-schema S] [--postgres-schema P]] [--json]

Upgrades a data directory that keeps every context in one event store
(events.db and readmodels.db, as releases before per-context stores wrote
it) to a store per context (DIR/<context>/): each stream moves to its
context's log with its event IDs, the state that is not rebuilt moves to
its context's database, and the old files are kept as *.pre-split. Run it
once, with no server on DIR; a second run refuses. With --postgres, the
single schema --from-schema (default public, the earlier releases'
default) is split into a schema per context under --postgres-schema, each
owned by its context's role, as agora serve provisions them. Payments'
streams are spread over --payments-partitions partitions (the data
directory's through agora payments reshard, which runs next).

flags:`)
		fs.PrintDefaults()
	}
	fs.StringVar(&m.serve.DataDir, "data", env("AGORA_DATA_DIR", "data"), "data directory (AGORA_DATA_DIR)")
	fs.BoolVar(&m.asJSON, "json", false, "print what moved as JSON")
	fs.StringVar(&m.serve.PostgresURL, "postgres", os.Getenv("AGORA_POSTGRES_URL"), "PostgreSQL URL: split a schema there instead of a data directory (AGORA_POSTGRES_URL)")
	fs.StringVar(&m.serve.PostgresSchema, "postgres-schema", env("AGORA_POSTGRES_SCHEMA", server.DefaultPostgresPrefix), "prefix of the contexts' new schemas (AGORA_POSTGRES_SCHEMA)")
	fs.StringVar(&m.splitFrom, "from-schema", "public", "the single schema an earlier release kept everything in")
	fs.IntVar(&m.reshardTo, "payments-partitions", partition.Default, "how many partitions payments' accounts are spread over")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if err := partition.Check(m.reshardTo); err != nil {
		return fmt.Errorf("--payments-partitions: %w", err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("migrate split: unexpected arguments %q", fs.Args())
	}
	m.command = "migrate split"
	return nil
}

// runSplit splits the data directory, with a progress bar on a terminal.
func (m *Main) runSplit(ctx context.Context) error {
	bar := m.progress("events moved", true)
	defer bar.Finish()
	moved := moving(bar, "moving events")
	var (
		rep   split.Report
		err   error
		where = m.serve.DataDir
	)
	if m.serve.PostgresURL != "" {
		where = "the database's schemas " + server.PostgresSchemaOf(m.serve.PostgresSchema, "*")
		rep, err = split.RunPostgres(ctx, m.serve.PostgresURL, m.splitFrom, m.serve.PostgresSchema, m.reshardTo, contextURLs(), moved)
	} else if rep, err = split.Run(ctx, m.serve.DataDir, moved); err == nil {
		// Payments' one log, spread over its partitions.
		var rs reshard.Report
		if rs, err = reshard.Run(ctx, m.serve.DataDir, m.reshardTo, moving(bar, "spreading payments")); err == nil {
			delete(rep.Events, partition.Context)
			maps.Copy(rep.Events, rs.Events)
		}
	}
	if err != nil {
		return err
	}
	if m.asJSON {
		return m.printJSON(rep)
	}
	fmt.Fprintf(m.Stdout, "a store per context now, in %s:\n", where)
	for _, c := range slices.Sorted(maps.Keys(rep.Events)) {
		fmt.Fprintf(m.Stdout, "  %-12s %5d events  tables %v\n", c, rep.Events[c], rep.Tables[c])
	}
	fmt.Fprintf(m.Stdout, "Rebuilt on the next start from the new logs: %v. The old log is kept (*.pre-split, or the table events_pre_split).\n", rep.Rebuilt)
	return nil
}

// progress shows the command's progress on stderr (package progress): a
// bar on a terminal, else a line every 2 s headed with the command. The
// bar counts unit (with its rate if rate); Finish ends it.
func (m *Main) progress(unit string, rate bool) *progress.Bar {
	return progress.New(m.Stderr, progress.Options{Name: m.command, Unit: unit, Rate: rate, Terminal: progress.IsTerminal(m.Stderr)})
}

// moving is a progress report of events moved (split.Progress), shown on
// bar as what the command is doing.
func moving(bar *progress.Bar, what string) split.Progress {
	bar.Describe(what)
	return func(done, total int) { bar.Set(done, total) }
}

// parsePayments reads `agora payments reshard`'s flags.
func (m *Main) parsePayments(args []string) error {
	if len(args) == 0 || args[0] != "reshard" {
		return fmt.Errorf("payments: want 'agora payments reshard --to N'")
	}
	fs := flag.NewFlagSet("payments reshard", flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), `usage: agora payments reshard --to N [--data DIR | --postgres URL [--postgres-schema P]] [--json]

Spreads payments' accounts over N partitions (each its own event store,
DIR/payments/p<k>/), offline: every stream moves to its partition with its
history, event IDs, versions and recording times; every account's balance
and each currency's total are compared before and after; only then are
the new partitions swapped in and N recorded. A failure before that
leaves the old layout as it was. Also spreads the one log payments kept
before partitions (DIR/payments/events.db). Run it with no server on DIR.
With --postgres, the partitions are schemas (<P>_payments_p<k>): the new
ones are built in staging schemas and swapped in by one transaction.

flags:`)
		fs.PrintDefaults()
	}
	fs.StringVar(&m.serve.DataDir, "data", env("AGORA_DATA_DIR", "data"), "data directory (AGORA_DATA_DIR)")
	fs.IntVar(&m.reshardTo, "to", 0, "the new partition count (1 to 64)")
	fs.StringVar(&m.serve.PostgresURL, "postgres", os.Getenv("AGORA_POSTGRES_URL"), "PostgreSQL URL: reshard the schemas there instead of a data directory (AGORA_POSTGRES_URL)")
	fs.StringVar(&m.serve.PostgresSchema, "postgres-schema", env("AGORA_POSTGRES_SCHEMA", server.DefaultPostgresPrefix), "the contexts' schema prefix (AGORA_POSTGRES_SCHEMA)")
	fs.BoolVar(&m.asJSON, "json", false, "print what moved as JSON")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("payments reshard: unexpected arguments %q", fs.Args())
	}
	if err := partition.Check(m.reshardTo); err != nil {
		return fmt.Errorf("--to: %w", err)
	}
	m.command = "payments reshard"
	return nil
}

// runReshard reshards payments, with a progress bar on a terminal.
func (m *Main) runReshard(ctx context.Context) error {
	bar := m.progress("events moved", true)
	defer bar.Finish()
	moved := moving(bar, "moving events")
	var (
		rep reshard.Report
		err error
	)
	if m.serve.PostgresURL != "" {
		m.serve.PostgresURLs = contextURLs()
		rep, err = reshard.RunPostgres(ctx, m.serve, m.reshardTo, moved)
	} else {
		rep, err = reshard.Run(ctx, m.serve.DataDir, m.reshardTo, moved)
	}
	if err != nil {
		return err
	}
	if m.asJSON {
		return m.printJSON(rep)
	}
	from := strconv.Itoa(rep.From) + " partitions"
	if rep.From == 0 {
		from = "one log"
	}
	fmt.Fprintf(m.Stdout, "payments: %s → %d partitions, %d accounts verified (balances and totals %v equal before and after)\n",
		from, rep.To, rep.Accounts, rep.Totals)
	for _, log := range slices.Sorted(maps.Keys(rep.Events)) {
		fmt.Fprintf(m.Stdout, "  %-12s %6d events\n", log, rep.Events[log])
	}
	if rep.Unrelayed > 0 {
		fmt.Fprintf(m.Stdout, "%d events the old relays had not published are published on the next start.\n", rep.Unrelayed)
	}
	return nil
}

// printJSON prints v as indented JSON.
func (m *Main) printJSON(v any) error {
	enc := json.NewEncoder(m.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
