package redisbackend_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/redisbackend"
)

// BenchmarkBatchFloor puts the lean batch script beside the writes any
// layout of a job must make, each as one EVAL of 1,000 jobs with the
// job's ID as the only argument, so that what a batch costs in the server
// can be read against what a leaner stored format could save (the target
// of 3x asynq's parallel enqueue, docs/benchmarks.md). The figure is
// ns/job, wall time, the server's work nearly all of it:
//
//	go test -run '^$' -bench BatchFloor -benchtime 20x .
func BenchmarkBatchFloor(b *testing.B) {
	const n = 1000
	client := newClient(b)
	ctx := context.Background()
	prefix := "floor-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	b.Cleanup(func() {
		iter := client.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			client.Unlink(ctx, iter.Val())
		}
	})
	payload := `{"at":1765000000000000000}`
	member := "'1765000000000:0000000000000001:' .. ARGV[i]"
	shapes := []struct{ name, body string }{
		{"arguments only", ``},
		{"HSET of the lean script's 9 fields", `redis.call('HSET', KEYS[1] .. ':j:' .. ARGV[i], 's', 'pending', 't', 'bench.noop',
			'p', '` + payload + `', 'pr', '0', 'ra', '1765000000000', 'ca', '1765000000000', 'md', '25', 'seq', i, 'rk', ` + member + `)`},
		{"HSET of 3 fields, the rest packed", `redis.call('HSET', KEYS[1] .. ':j:' .. ARGV[i], 's', 'pending',
			'x', '` + strings.Repeat("x", 90) + payload + `', 'rk', ` + member + `)`},
		{"SET of one packed value", `redis.call('SET', KEYS[1] .. ':j:' .. ARGV[i], '` + strings.Repeat("x", 120) + payload + `')`},
		{"ZADD to one set", `l[#l + 1] = 0; l[#l + 1] = ` + member},
		{"ZADD to two sets", `l[#l + 1] = 0; l[#l + 1] = ` + member + `; m[#m + 1] = i; m[#m + 1] = ARGV[i]`},
	}
	ids := make([]any, n)
	for _, s := range shapes {
		script := `local l, m = {}, {}
			for i = 1, #ARGV do ` + s.body + ` end
			for i = 1, #l, 1000 do redis.call('ZADD', KEYS[1] .. ':ready', unpack(l, i, math.min(i + 999, #l))) end
			for i = 1, #m, 1000 do redis.call('ZADD', KEYS[1] .. ':s', unpack(m, i, math.min(i + 999, #m))) end
			return 1`
		b.Run(s.name, func(b *testing.B) {
			round := 0
			for b.Loop() {
				round++
				for i := range ids {
					ids[i] = "r" + strconv.Itoa(round) + "-" + strconv.Itoa(i)
				}
				if err := client.Eval(ctx, script, []string{prefix + ":" + strconv.Itoa(len(s.name))}, ids...).Err(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/job")
		})
	}
	b.Run("lean batch script", func(b *testing.B) {
		be := open(b, client, redisbackend.Config{Prefix: prefix + ":lean", JanitorEvery: -1})
		jobs := make([]*backends.JobInsert, n)
		round := 0
		for b.Loop() {
			round++
			for i := range jobs {
				jobs[i] = &backends.JobInsert{ID: "r" + strconv.Itoa(round) + "-" + strconv.Itoa(i), Queue: "default",
					Task: "bench.noop", Payload: []byte(payload), MaxDeliveries: 25}
			}
			if _, err := be.Enqueue(ctx, backends.EnqueueParams{Jobs: jobs}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/job")
	})
}
