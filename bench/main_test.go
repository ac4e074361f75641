package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// The benchmark command itself works end to end on every backend, at a size
// that takes a moment; the figures are not checked, only that each workload
// ran all its jobs.
func TestBenchRunsEveryWorkload(t *testing.T) {
	cfg := config{n: 500, batch: 100, single: 100, concurrency: 8, rate: 500, duration: 200 * time.Millisecond}
	var rows []row
	for _, target := range targets {
		r, err := runTarget(target, cfg)
		if err != nil {
			t.Fatalf("%s: %v", target.name, err)
		}
		if r.single <= 0 || r.batch <= 0 || r.burn <= 0 || r.latencyJobs != 100 || r.max < r.p99 || r.p99 < r.p50 {
			t.Fatalf("%s: implausible figures %+v", target.name, r)
		}
		rows = append(rows, r)
	}
	var out bytes.Buffer
	printTable(&out, rows)
	if !strings.Contains(out.String(), "sqlite") || !strings.Contains(out.String(), "(1.00x)") {
		t.Fatalf("table:\n%s", out.String())
	}
}
