package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/conveyorhq/conveyor/internal/testenv"
)

// The workflow rows work end to end on every backend, at a size that takes
// a moment; the figures are not checked, only that each workload finished.
func TestWorkflowRowsRunOnEveryBackend(t *testing.T) {
	cfg := config{batch: 100, concurrency: []int{8}, redisAddr: testenv.RedisAddr(t), postgresURL: testenv.PostgresURL(t), rabbitURL: testenv.RabbitMQURL(t)}
	wc := wfConfig{members: 200, chains: 20, steps: 3, latChords: 5, latMembers: 5}
	var rows []wfRow
	for _, target := range wfTargets {
		if why := target.needs(cfg); why != "" {
			t.Fatalf("%s cannot run: %s", target.name, why)
		}
		r, err := runWFRow(t.Context(), cfg, wc, target)
		if err != nil {
			t.Fatalf("%s: %v", target.name, err)
		}
		if r.chord <= 0 || r.chains <= 0 || r.plainChord <= 0 || r.latencyN != 5 || r.pickN != 5 || r.cbMax < r.cbP50 {
			t.Fatalf("%s: implausible figures %+v", target.name, r)
		}
		rows = append(rows, r)
	}
	var out bytes.Buffer
	printWFTable(&out, rows)
	for _, want := range []string{"memory", "sqlite", "redis", "postgres", "amqp+redis", "x "} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("table lacks %q:\n%s", want, out.String())
		}
	}
}
