package record_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/backends/internal/record"
	"github.com/conveyorhq/conveyor/job"
)

// queueOf is a queue of due jobs for Fill's picks: every third job it
// takes is a dead letter, which takes a place and returns nothing.
type queueOf struct {
	due  int
	asks []int
	fail error // returned by the pick after the first
}

func (q *queueOf) pick(limit int) (backends.ReserveSlotsResult, int, error) {
	q.asks = append(q.asks, limit)
	if q.fail != nil && len(q.asks) > 1 {
		return backends.ReserveSlotsResult{}, 0, q.fail
	}
	var res backends.ReserveSlotsResult
	took := min(limit, q.due)
	for i := range took {
		if i%3 != 2 {
			res.Jobs = append(res.Jobs, &job.Record{})
		}
	}
	q.due -= took
	return res, took, nil
}

func TestFill(t *testing.T) {
	for _, c := range []struct {
		name        string
		due, limit  int
		most        int
		wantJobs    int
		wantAsks    []int
		wantDueLeft int
	}{
		// 9 due: 6 jobs and 3 dead letters, all seen in one pick.
		{"fewer due than asked", 9, 10, 0, 6, []int{10}, 0},
		// A full pick that lost places to dead letters is picked again
		// for them, never for more than the limit; and no pick for more
		// than most.
		{"dead letters refilled", 100, 10, 0, 10, []int{10, 3, 1}, 86},
		{"capped a run", 2500, 1500, 1000, 1500, []int{1000, 833, 277, 92, 30, 10, 3, 1}, 254},
	} {
		t.Run(c.name, func(t *testing.T) {
			q := &queueOf{due: c.due}
			res, err := record.Fill(c.limit, c.most, q.pick)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Jobs) != c.wantJobs || !slices.Equal(q.asks, c.wantAsks) || q.due != c.wantDueLeft {
				t.Fatalf("Fill(%d of %d due, most %d): %d jobs, asks %v, %d left; want %d, %v, %d",
					c.limit, c.due, c.most, len(res.Jobs), q.asks, q.due, c.wantJobs, c.wantAsks, c.wantDueLeft)
			}
		})
	}
	t.Run("error after jobs leased", func(t *testing.T) {
		q := &queueOf{due: 100, fail: errors.New("broken")}
		res, err := record.Fill(10, 0, q.pick)
		if err != nil || len(res.Jobs) != 7 {
			t.Fatalf("Fill = %d jobs, %v; want the first pick's 7 and no error", len(res.Jobs), err)
		}
	})
	t.Run("error first", func(t *testing.T) {
		q := &queueOf{fail: errors.New("broken"), asks: []int{0}} // so the first pick fails
		if _, err := record.Fill(10, 0, q.pick); err == nil {
			t.Fatal("Fill of a failing pick returned no error")
		}
	})
}
