package cli

import (
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// longFlags rewrites -name and -name=value to --name for every long flag
// the tree defines, so the single-dash spelling of Go's flag package, that
// scripts and the README used before the CLI moved to cobra, still works:
// pflag would read -db as the shorthands -d -b and fail. Nothing after
// "--" is touched, nor anything after a command that parses its own flags
// (worker).
func longFlags(root *cobra.Command, args []string) []string {
	names := map[string]bool{"help": true}
	own := map[string]bool{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.DisableFlagParsing {
			own[c.Name()] = true
		}
		add := func(f *pflag.Flag) {
			if len(f.Name) > 1 {
				names[f.Name] = true
			}
		}
		c.Flags().VisitAll(add)
		c.PersistentFlags().VisitAll(add)
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	out := make([]string, len(args))
	copy(out, args)
	for i, a := range out {
		if a == "--" || own[a] {
			break
		}
		if !strings.HasPrefix(a, "-") || strings.HasPrefix(a, "--") {
			continue
		}
		name, _, _ := strings.Cut(a[1:], "=")
		if names[name] {
			out[i] = "-" + a
		}
	}
	return out
}
