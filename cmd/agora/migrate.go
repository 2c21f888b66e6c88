package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"os"
	"slices"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

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
owned by its context's role, as agora serve provisions them.

flags:`)
		fs.PrintDefaults()
	}
	fs.StringVar(&m.serve.DataDir, "data", env("AGORA_DATA_DIR", "data"), "data directory (AGORA_DATA_DIR)")
	fs.BoolVar(&m.asJSON, "json", false, "print what moved as JSON")
	fs.StringVar(&m.serve.PostgresURL, "postgres", os.Getenv("AGORA_POSTGRES_URL"), "PostgreSQL URL: split a schema there instead of a data directory (AGORA_POSTGRES_URL)")
	fs.StringVar(&m.serve.PostgresSchema, "postgres-schema", env("AGORA_POSTGRES_SCHEMA", server.DefaultPostgresPrefix), "prefix of the contexts' new schemas (AGORA_POSTGRES_SCHEMA)")
	fs.StringVar(&m.splitFrom, "from-schema", "public", "the single schema an earlier release kept everything in")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("migrate split: unexpected arguments %q", fs.Args())
	}
	m.command = "migrate split"
	return nil
}

// runSplit splits the data directory, with a progress bar on a terminal.
func (m *Main) runSplit(ctx context.Context) error {
	var progress split.Progress
	if f, ok := m.Stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		var bar *progressbar.ProgressBar
		progress = func(done, total int) {
			if bar == nil {
				bar = progressbar.NewOptions(total, progressbar.OptionSetWriter(m.Stderr), progressbar.OptionSetDescription("moving events"),
					progressbar.OptionShowCount(), progressbar.OptionSetPredictTime(true), progressbar.OptionClearOnFinish())
			}
			bar.Set(done) //nolint:errcheck // a progress bar
		}
	} else {
		last := time.Now()
		progress = func(done, total int) {
			if time.Since(last) > 2*time.Second || done == total {
				fmt.Fprintf(m.Stderr, "split: %d of %d events moved\n", done, total)
				last = time.Now()
			}
		}
	}
	var (
		rep   split.Report
		err   error
		where = m.serve.DataDir
	)
	if m.serve.PostgresURL != "" {
		where = "the database's schemas " + server.PostgresSchemaOf(m.serve.PostgresSchema, "*")
		rep, err = split.RunPostgres(ctx, m.serve.PostgresURL, m.splitFrom, m.serve.PostgresSchema, contextURLs(), progress)
	} else {
		rep, err = split.Run(ctx, m.serve.DataDir, progress)
	}
	if err != nil {
		return err
	}
	if m.asJSON {
		enc := json.NewEncoder(m.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	fmt.Fprintf(m.Stdout, "a store per context now, in %s:\n", where)
	for _, c := range slices.Sorted(maps.Keys(rep.Tables)) {
		fmt.Fprintf(m.Stdout, "  %-10s %5d events  tables %v\n", c, rep.Events[c], rep.Tables[c])
	}
	fmt.Fprintf(m.Stdout, "Rebuilt on the next start from the new logs: %v. The old log is kept (*.pre-split, or the table events_pre_split).\n", rep.Rebuilt)
	return nil
}
