package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// A grow table prints each cell's median with its spread and its ratio to
// the row's first size, and the ratio to the peer at the largest size.
func TestGrowTable(t *testing.T) {
	r := newGrowResult("x", []string{"small", "big"}, "rate")
	for _, v := range []float64{100, 90, 110} {
		r.add(0, "peer", "", 0, v)
		r.add(0, "peer", "", 1, v/2)
		r.add(0, "ours", "peer", 0, 2*v)
	}
	for _, v := range []float64{150, 160, 170} {
		r.add(0, "ours", "peer", 1, v)
	}
	if mid, spread, ok := r.med(0, "ours", 1); !ok || mid != 160 || spread != 10.0/160 {
		t.Fatalf("median %v spread %v ok %v", mid, spread, ok)
	}
	var out bytes.Buffer
	r.print(&out)
	for _, want := range []string{"200 ±10% 1.00x", "160 ±6% 0.80x", "3.20x peer"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("table lacks %q:\n%s", want, out.String())
		}
	}
	if svg := r.svg(0); strings.Count(svg, "<polyline") != 2 || !strings.Contains(svg, ">ours</text>") {
		t.Fatalf("plot:\n%s", svg)
	}
}

// Every -grow workload runs end to end on the in-process rows at a size
// that takes a moment; the figures are not checked, only that each
// workload ran all its jobs and filled its tables.
func TestGrowWorkloadsRun(t *testing.T) {
	cfg := config{n: 100, batch: 100, single: 10, concurrency: []int{8}, rate: 100, duration: 100 * time.Millisecond, rounds: 1}
	g := &growConfig{backlog: []int{300, 600}, retained: 300, retainJobs: 200, queues: []int{1, 5}, queueJobs: 300,
		dashJobs: 400, dashDrain: 100, payloads: []int{1024, 8192}, payloadMB: 1}
	var run []target
	for _, tg := range targets {
		if tg.name == "memory" || tg.name == "sqlite" {
			run = append(run, tg)
		}
	}
	for name, w := range growWorkloads {
		results, err := w(t.Context(), cfg, g, run)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, res := range results {
			if len(res.rows) == 0 {
				t.Fatalf("%s: no rows", name)
			}
			for _, row := range res.rows {
				if _, _, ok := res.med(0, row, len(res.sizes)-1); !ok {
					t.Fatalf("%s %s: no figure at the largest size", res.name, row)
				}
			}
		}
	}
}
