package audit

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
)

// WriteTable prints the report for a terminal: one line per check, then
// every violation with its details.
func (r Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "audit at %s, log head %d\n\n", r.CheckedAt.Format("2006-01-02T15:04:05Z07:00"), r.Head)
	fmt.Fprintln(tw, "CHECK\tRESULT\tCHECKED\tIN FLIGHT\tVIOLATIONS")
	for _, c := range r.Checks {
		result := "ok"
		switch {
		case c.Skipped != "":
			result = "skipped: " + c.Skipped
		case !c.OK:
			result = "FAILED"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\n", c.Name, result, c.Checked, c.InFlight, len(c.Violations))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	vs := r.Violations()
	if len(vs) == 0 {
		_, err := fmt.Fprintln(w, "\nno violations")
		return err
	}
	fmt.Fprintf(w, "\n%d violation(s):\n", len(vs))
	for _, v := range vs {
		details, err := json.Marshal(v.Details)
		if err != nil {
			return fmt.Errorf("audit: %w", err)
		}
		if _, err := fmt.Fprintf(w, "  %s  %s: %s\n      %s\n", v.Check, v.Subject, v.Problem, details); err != nil {
			return err
		}
	}
	return nil
}
