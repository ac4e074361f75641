package cli

import (
	"fmt"
	"io"
	"runtime"

	"github.com/spf13/cobra"
)

func (e *env) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "the binary's version and the Go it was built with",
		Args:  nArgs(0),
		RunE: func(c *cobra.Command, _ []string) error {
			v := struct {
				Name    string `json:"name"`
				Version string `json:"version"`
				Go      string `json:"go"`
			}{e.app.Name, e.app.Version, runtime.Version()}
			return e.show(c, v, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "%s %s (%s)\n", v.Name, v.Version, v.Go)
				return err
			})
		},
	}
}
