package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/internal/testenv"
)

// The benchmark command itself works end to end on every row, at a size
// that takes a moment; the figures are not checked, only that each workload
// ran all its jobs.
func TestBenchRunsEveryWorkload(t *testing.T) {
	cfg := config{n: 500, batch: 100, single: 100, concurrency: []int{8, 16}, rate: 500,
		duration: 200 * time.Millisecond, redisAddr: testenv.RedisAddr(t), postgresURL: testenv.PostgresURL(t), rabbitURL: testenv.RabbitMQURL(t)}
	var rows []row
	for _, target := range targets {
		if why := target.needs(cfg); why != "" {
			t.Fatalf("%s cannot run: %s", target.name, why)
		}
		r, err := target.run(t.Context(), cfg)
		if err != nil {
			t.Fatalf("%s: %v", target.name, err)
		}
		switch {
		case target.drainOnly:
			if r.burn[0] <= 0 || r.latencyJobs <= 0 || r.max < r.p99 || r.p99 < r.p50 {
				t.Fatalf("%s: implausible figures %+v", target.name, r)
			}
		case r.single <= 0 || r.batch <= 0 || len(r.burn) != 2 || r.burn[1] <= 0 || r.latencyJobs != 100 || r.max < r.p99 || r.p99 < r.p50:
			t.Fatalf("%s: implausible figures %+v", target.name, r)
		}
		r.vs = target.vs
		rows = append(rows, r)
	}
	var out bytes.Buffer
	printTable(&out, rows, cfg)
	for _, want := range []string{"river-sqlite", "sqlite", "asynq", "redis", "river", "postgres", "amqp091", "amqp", "x)"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("table lacks %q:\n%s", want, out.String())
		}
	}
}

// Each figure of several rounds is the median of that figure.
func TestMedianOfRounds(t *testing.T) {
	rs := []row{
		{name: "x", single: 3, batch: 10, burn: []float64{5, 1}, p50: 3, p99: 9, max: 30},
		{name: "x", single: 1, batch: 30, burn: []float64{4, 3}, p50: 1, p99: 7, max: 10},
		{name: "x", single: 2, batch: 20, burn: []float64{6, 2}, p50: 2, p99: 8, max: 20},
	}
	m := median(rs)
	if m.single != 2 || m.batch != 20 || m.burn[0] != 5 || m.burn[1] != 2 || m.p50 != 2 || m.p99 != 8 || m.max != 20 {
		t.Fatalf("median = %+v", m)
	}
	if rs[2].burn[0] != 6 {
		t.Fatalf("median changed its input: %+v", rs[2])
	}
}

// Quantiles are nearest-rank: of 100 samples, p99 is the 99th and p50 the
// 50th, not the largest and the 51st.
func TestQuantileIsNearestRank(t *testing.T) {
	var l latencies
	for i := 1; i <= 100; i++ {
		l = append(l, time.Duration(i))
	}
	for q, want := range map[float64]time.Duration{0.5: 50, 0.99: 99, 1: 100, 0: 1} {
		if got := l.quantile(q); got != want {
			t.Errorf("quantile(%v) of 1..100 = %d; want %d", q, got, want)
		}
	}
	if got := (latencies{7}).quantile(0.99); got != 7 {
		t.Errorf("quantile(0.99) of one sample = %d; want it", got)
	}
}
