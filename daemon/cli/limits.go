package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/conveyorhq/conveyor/dashboard"
	"github.com/conveyorhq/conveyor/flow"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/worker"
)

func (e *env) limitsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "limits [KIND:NAME=LIMIT[/PER[:BURST]] | KIND:NAME reset]",
		Short: "flow limits in force with their use and the jobs they hold back, or override one on every worker, or give it back to the code",
		Long: `With no argument: every limit the live workers declare, as of their last
heartbeats, with the slots or tokens in use and the jobs held back, summed
over the workers, and the override set on it.

KIND:NAME=LIMIT[/PER[:BURST]] overrides a limit on every worker within a
second (flow.SetOverride): rate:queue:email=100/1m, concurrency:shopify.sync=3.
KIND:NAME reset removes the override: the declared figures hold again.`,
		Args: wrapArgs(cobra.MaximumNArgs(2)),
		RunE: func(c *cobra.Command, args []string) error {
			var set *flow.Override
			var reset []string
			switch {
			case len(args) == 0:
			case len(args) == 1:
				o, err := flow.ParseOverride(args[0])
				if err != nil {
					return usageErr(c, "%v", err)
				}
				set = &o
			case args[1] == "reset":
				kind, name, ok := strings.Cut(args[0], ":")
				if !ok || name == "" || (kind != flow.KindRate && kind != flow.KindConcurrency) {
					return usageErr(c, "%q is not KIND:NAME with KIND rate or concurrency", args[0])
				}
				reset = []string{kind, name}
			default:
				return usageErr(c, "want KIND:NAME=LIMIT[/PER[:BURST]] or KIND:NAME reset")
			}
			s, err := e.open(c.Context(), mustExist)
			if err != nil {
				return err
			}
			defer s.Close()
			switch {
			case set != nil:
				if err := flow.SetOverride(c.Context(), s, *set); err != nil {
					return err
				}
				fmt.Fprintf(c.OutOrStdout(), "override %s set: every worker applies it within %s\n", set, flow.OverrideRefresh)
				return nil
			case reset != nil:
				if err := flow.RemoveOverride(c.Context(), s, reset[0], reset[1]); err != nil {
					return err
				}
				fmt.Fprintf(c.OutOrStdout(), "override of %s removed: the declared figures hold within %s\n", args[0], flow.OverrideRefresh)
				return nil
			}
			return e.limits(c, s)
		},
	}
}

// limits prints the limits in force: the dashboard's LimitView.
func (e *env) limits(c *cobra.Command, s store) error {
	states, err := worker.Limits(c.Context(), s)
	if err != nil {
		return err
	}
	ovs, err := flow.Overrides(c.Context(), s)
	if err != nil && !errors.Is(err, job.ErrUnsupported) {
		return err
	}
	views := dashboard.LimitViews(states, ovs)
	return e.show(c, views, func(w io.Writer) error {
		return table(w, "LIMIT\tKIND\tIN FORCE\tPER KEY\tIN USE\tHELD BACK\tIN ALL\tWORKERS\tOVERRIDE", func(tw io.Writer) {
			for _, v := range views {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%d\t%d\t%d\t%d\t%s\n", v.Name, v.Kind, figures(v.Kind, v.Limit, v.PerSeconds, v.Burst),
					v.PerKey, v.InUse, v.HeldBack, v.HeldBackTotal, v.Workers, overrideText(v))
			}
		})
	})
}

// figures are a limit's: "100/1m0s burst 200" or "3 at once"; "-" when
// no live worker declares it.
func figures(kind string, limit int, per float64, burst int) string {
	switch {
	case limit == 0:
		return "-"
	case kind == flow.KindConcurrency:
		return fmt.Sprintf("%d at once", limit)
	}
	s := fmt.Sprintf("%d/%s", limit, time.Duration(per*float64(time.Second)))
	if burst != 0 && burst != limit {
		s += fmt.Sprintf(" burst %d", burst)
	}
	return s
}

func overrideText(v dashboard.LimitView) string {
	if v.Override == nil {
		return "-"
	}
	o := v.Override
	if o.PerSeconds == 0 {
		o.PerSeconds = v.PerSeconds
	}
	s := figures(v.Kind, o.Limit, o.PerSeconds, o.Burst)
	if o.SetAt != nil {
		s += ", set " + ago(*o.SetAt)
	}
	return s
}
