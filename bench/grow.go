package main

// The "how cost grows" workloads (-grow): each measures one figure at
// growing sizes (backlog depth, retained rows, queues, payload bytes) and
// prints, per row, the median of the rounds, the spread of the rounds and
// the ratio to the smallest size, which is what a flat cost keeps near
// 1.00x; the ratio to the row's peer at the same size is in its own column.
//
//	go run ./bench -grow backlog,retention,queues,dashboard,payloads
//	go run ./bench -grow backlog -grow-backlog 10000,100000 -backends redis,asynq -rounds 3

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// growConfig holds the -grow flags; every size is a flag so that a run on
// a small machine can take smaller ones (the docs print what ran).
type growConfig struct {
	workloads  []string
	backlog    []int // jobs waiting
	retained   int   // finished jobs kept, for the retention workload
	retainJobs int   // jobs enqueued and drained with and without them
	queues     []int // queues one worker serves
	queueJobs  int   // jobs spread evenly over them
	dashJobs   int   // jobs in the backend behind the dashboard
	dashDrain  int   // jobs drained beside the dashboard's requests
	payloads   []int // bytes
	payloadMB  int   // megabytes of payload per payload run (at most 5,000 jobs)
	svgDir     string
}

func (g *growConfig) asked() bool { return len(g.workloads) > 0 }

// intList is a comma-separated flag of positive integers.
type intList struct{ v *[]int }

func (l intList) String() string {
	if l.v == nil {
		return ""
	}
	var s []string
	for _, n := range *l.v {
		s = append(s, strconv.Itoa(n))
	}
	return strings.Join(s, ",")
}

func (l intList) Set(s string) error {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return fmt.Errorf("bad size %q", f)
		}
		out = append(out, n)
	}
	*l.v = out
	return nil
}

func growFlags() *growConfig {
	g := &growConfig{
		backlog:  []int{10_000, 100_000, 1_000_000},
		queues:   []int{1, 100, 1000},
		payloads: []int{1 << 10, 64 << 10, 1 << 20},
	}
	flag.Func("grow", "run the how-cost-grows workloads instead of the table: comma-separated, of backlog,retention,queues,dashboard,payloads (or all)", func(s string) error {
		for w := range strings.SplitSeq(s, ",") {
			switch w = strings.TrimSpace(w); w {
			case "all":
				g.workloads = append(g.workloads, "backlog", "retention", "queues", "dashboard", "payloads")
			case "backlog", "retention", "queues", "dashboard", "payloads":
				g.workloads = append(g.workloads, w)
			default:
				return fmt.Errorf("unknown workload %q", w)
			}
		}
		return nil
	})
	flag.Var(intList{&g.backlog}, "grow-backlog", "backlog depths: jobs enqueued, then drained by one worker at the first -c")
	flag.IntVar(&g.retained, "grow-retained", 5_000_000, "finished jobs retained for the retention workload (postgres, sqlite, redis)")
	flag.IntVar(&g.retainJobs, "grow-retain-jobs", 20_000, "jobs enqueued and drained with 0 and -grow-retained finished jobs kept")
	flag.Var(intList{&g.queues}, "grow-queues", "queue counts one worker serves, weighted")
	flag.IntVar(&g.queueJobs, "grow-queue-jobs", 100_000, "jobs spread evenly over the queues")
	flag.IntVar(&g.dashJobs, "grow-dashboard", 1_000_000, "jobs in the backend behind the dashboard and /metrics")
	flag.IntVar(&g.dashDrain, "grow-dashboard-drain", 20_000, "jobs drained with and without the dashboard's requests beside")
	flag.Var(intList{&g.payloads}, "grow-payloads", "payload sizes in bytes")
	flag.IntVar(&g.payloadMB, "grow-payload-mb", 100, "megabytes of payload per payload run (at most 5,000 jobs, at least 20)")
	flag.StringVar(&g.svgDir, "grow-svg", "docs/img", "directory for the workloads' SVG plots (empty: none)")
	return g
}

// growResult is one workload's figures: per metric, per row, per size, one
// value a round.
type growResult struct {
	name    string   // the workload, also the plot's file name
	sizes   []string // column labels
	metrics []growMetric
	// rows in the order they ran; vs names each row's peer.
	rows []string
	vs   map[string]string
	// apart: the columns are not sizes of one thing (the dashboard's
	// pages), so no cell has a ratio to the first.
	apart bool
}

type growMetric struct {
	title  string
	higher bool                   // higher is better (a rate), for the notes
	vals   map[string][][]float64 // row -> size -> rounds
}

func newGrowResult(name string, sizes []string, titles ...string) *growResult {
	r := &growResult{name: name, sizes: sizes, vs: map[string]string{}}
	for _, t := range titles {
		r.metrics = append(r.metrics, growMetric{title: t, vals: map[string][][]float64{}})
	}
	return r
}

// add records one round's value of metric m for row at size index i; a
// row or size it never gets prints as a dash.
func (r *growResult) add(m int, row, vs string, i int, v float64) {
	if !slices.Contains(r.rows, row) {
		r.rows = append(r.rows, row)
		r.vs[row] = vs
	}
	vals := r.metrics[m].vals
	if vals[row] == nil {
		vals[row] = make([][]float64, len(r.sizes))
	}
	vals[row][i] = append(vals[row][i], v)
}

// med returns the median of a cell and its spread, half the range over the
// median; ok is false for a cell with no value.
func (r *growResult) med(m int, row string, i int) (mid, spread float64, ok bool) {
	cell := r.metrics[m].vals[row]
	if cell == nil || len(cell[i]) == 0 {
		return 0, 0, false
	}
	v := slices.Sorted(slices.Values(cell[i]))
	mid = v[len(v)/2]
	if mid != 0 {
		spread = (v[len(v)-1] - v[0]) / 2 / mid
	}
	return mid, spread, true
}

// print writes each metric as a table: a cell is the median, ±the spread,
// and its ratio to the row's first size; the last column is the ratio to
// the row's peer at the largest size.
func (r *growResult) print(out io.Writer) {
	for m, met := range r.metrics {
		fmt.Fprintf(out, "\n%s: %s\n", r.name, met.title)
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
		fmt.Fprint(tw, "row\t")
		for _, s := range r.sizes {
			fmt.Fprintf(tw, "%s\t", s)
		}
		fmt.Fprintln(tw, "vs peer at the largest\t")
		for _, row := range r.rows {
			fmt.Fprintf(tw, "%s\t", row)
			first, _, firstOK := r.med(m, row, 0)
			for i := range r.sizes {
				v, sp, ok := r.med(m, row, i)
				switch {
				case !ok:
					fmt.Fprint(tw, "-\t")
				case firstOK && first != 0 && !r.apart:
					fmt.Fprintf(tw, "%s ±%.0f%% %.2fx\t", num(v), sp*100, v/first)
				default:
					fmt.Fprintf(tw, "%s ±%.0f%%\t", num(v), sp*100)
				}
			}
			last := len(r.sizes) - 1
			v, _, ok := r.med(m, row, last)
			p, _, pok := r.med(m, r.vs[row], last)
			if ok && pok && p != 0 {
				fmt.Fprintf(tw, "%.2fx %s\t", v/p, r.vs[row])
			} else {
				fmt.Fprint(tw, "\t")
			}
			fmt.Fprintln(tw)
		}
		tw.Flush()
	}
}

// num prints a figure with as many digits as it needs.
func num(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// growWorkloads are the workloads by name; each runs its rounds itself so
// that the rows take turns within a round.
var growWorkloads = map[string]func(ctx context.Context, cfg config, g *growConfig, run []target) ([]*growResult, error){
	"backlog":   growBacklog,
	"retention": growRetention,
	"queues":    growQueues,
	"dashboard": growDashboard,
	"payloads":  growPayloads,
}

func runGrow(ctx context.Context, cfg config, g *growConfig, run []target) error {
	sizes := map[string]string{
		"backlog":   fmt.Sprintf("backlog %v", g.backlog),
		"retention": fmt.Sprintf("retained %d (%d jobs)", g.retained, g.retainJobs),
		"queues":    fmt.Sprintf("queues %v (%d jobs)", g.queues, g.queueJobs),
		"dashboard": fmt.Sprintf("dashboard %d (%d drained)", g.dashJobs, g.dashDrain),
		"payloads":  fmt.Sprintf("payloads %v (%d MB a run)", g.payloads, g.payloadMB),
	}
	var asked []string
	for _, w := range g.workloads {
		asked = append(asked, sizes[w])
	}
	fmt.Printf("how cost grows: %s\n", strings.Join(asked, "; "))
	for _, w := range g.workloads {
		fmt.Fprintf(os.Stderr, "grow %s...\n", w)
		results, err := growWorkloads[w](ctx, cfg, g, run)
		if err != nil {
			return fmt.Errorf("%s: %w", w, err)
		}
		for _, res := range results {
			res.print(os.Stdout)
			if g.svgDir == "" || len(res.rows) == 0 {
				continue
			}
			path := filepath.Join(g.svgDir, "grow-"+res.name+".svg")
			if err := os.WriteFile(path, []byte(res.svg(0)), 0o644); err != nil {
				return err
			}
			fmt.Printf("plot of %q: %s\n", res.metrics[0].title, path)
		}
	}
	return nil
}

// progress notes one round of one row on stderr, to see a long run move.
func progress(workload, row, size string, round int, what string, v float64) {
	fmt.Fprintf(os.Stderr, "  %s %s %s round %d: %s %s\n", workload, row, size, round+1, what, num(v))
}
