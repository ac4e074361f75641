package backends

import (
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/conveyorhq/conveyor/job"
)

// Validate checks what every backend requires of an insert batch, so that all
// of them reject the same malformed input with the same error.
func (p EnqueueParams) Validate() error {
	for i, ins := range p.Jobs {
		switch {
		case ins == nil:
			return fmt.Errorf("%w: job %d is nil", job.ErrInvalid, i)
		case ins.ID == "":
			return fmt.Errorf("%w: job %d has no ID", job.ErrInvalid, i)
		case !utf8.ValidString(ins.ID):
			// IDs are text everywhere they go: PostgreSQL's columns, the
			// JSON of the HTTP API and the dashboard, the JSON array that
			// names the jobs a SQLite reserve leases.
			return fmt.Errorf("%w: job %d's ID %q is not UTF-8", job.ErrInvalid, i, ins.ID)
		case ins.Queue == "":
			return fmt.Errorf("%w: job %s has no queue", job.ErrInvalid, ins.ID)
		case ins.Task == "":
			return fmt.Errorf("%w: job %s has no task name", job.ErrInvalid, ins.ID)
		case ins.MaxDepth < 0 || ins.MaxDeliveries < 0 || ins.Timeout < 0:
			return fmt.Errorf("%w: job %s has a negative bound", job.ErrInvalid, ins.ID)
		}
	}
	return nil
}

// Validate checks a reserve request.
func (p ReserveParams) Validate() error {
	if p.Queue == "" || p.Limit < 1 || p.Lease <= 0 {
		return fmt.Errorf("%w: reserve needs a queue, a limit of at least 1 and a positive lease", job.ErrInvalid)
	}
	return nil
}

// DepthNeeded returns, per queue, how many new jobs the batch adds and the
// tightest MaxDepth asked for, for backends that check the bound themselves.
func (p EnqueueParams) DepthNeeded() map[string]DepthCheck {
	m := map[string]DepthCheck{}
	for _, ins := range p.Jobs {
		c := m[ins.Queue]
		c.Adding++
		if ins.MaxDepth > 0 && (c.MaxDepth == 0 || ins.MaxDepth < c.MaxDepth) {
			c.MaxDepth = ins.MaxDepth
		}
		m[ins.Queue] = c
	}
	return m
}

// DepthCheck is one queue's share of an insert batch.
type DepthCheck struct {
	Adding   int // jobs in the batch for this queue (duplicates included)
	MaxDepth int // 0: unbounded
}

// Page checks a list request and returns its page size (Limit, or 100) and
// the position after which the page starts, for backends whose cursor is
// an enqueue sequence number.
func (p ListJobsParams) Page() (limit int, after int64, err error) {
	if !p.State.Valid() {
		return 0, 0, fmt.Errorf("%w: list needs a valid state, got %q", job.ErrInvalid, p.State)
	}
	limit = p.Limit
	if limit <= 0 {
		limit = 100
	}
	if p.Cursor != "" {
		if after, err = strconv.ParseInt(p.Cursor, 10, 64); err != nil || after < 0 {
			return 0, 0, fmt.Errorf("%w: bad cursor %q", job.ErrInvalid, p.Cursor)
		}
	}
	return limit, after, nil
}
