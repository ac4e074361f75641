package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// show prints v as indented JSON with --json, else calls text.
func (e *env) show(c *cobra.Command, v any, text func(w io.Writer) error) error {
	if e.json {
		enc := json.NewEncoder(c.OutOrStdout())
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	return text(c.OutOrStdout())
}

// table writes rows of tab-separated cells under a header, aligned.
func table(w io.Writer, header string, rows func(tw io.Writer)) error {
	tw := tabwriterFor(w)
	fmt.Fprintln(tw, header)
	rows(tw)
	return tw.Flush()
}

// stamp is t in RFC 3339, or "-" when unset.
func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Format(time.RFC3339)
}

// dash is s, or "-" when it is empty.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// ago is how long before now t was, to the second, or "-" when unset.
func ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return time.Since(t).Round(time.Second).String() + " ago"
}

// tabwriterFor aligns tab-separated cells written to w, two spaces apart.
func tabwriterFor(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
}
