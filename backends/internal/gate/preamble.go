package gate

import (
	"context"

	"github.com/conveyorhq/conveyor/backends"
)

// Enqueue is how every backend's Enqueue starts: Check, then p.Validate,
// so that all of them refuse a closed backend, an ended context and a
// malformed batch alike. An empty batch is answered here, with no results
// and no round trip. The call is answered when the results or the error
// are not nil: the backend returns them as they are.
func (g *Gate) Enqueue(ctx context.Context, p backends.EnqueueParams) ([]backends.EnqueueResult, error) {
	if err := g.Valid(ctx, p); err != nil {
		return nil, err
	}
	if len(p.Jobs) == 0 {
		return []backends.EnqueueResult{}, nil
	}
	return nil, nil
}

// Valid is Check, then p.Validate: the start of a call whose parameters
// the contract checks (Reserve's).
func (g *Gate) Valid(ctx context.Context, p interface{ Validate() error }) error {
	if err := g.Check(ctx); err != nil {
		return err
	}
	return p.Validate()
}

// Page is Check, then p.Page: the start of every ListJobs whose cursor is
// an enqueue sequence number.
func (g *Gate) Page(ctx context.Context, p backends.ListJobsParams) (limit int, after int64, err error) {
	if err := g.Check(ctx); err != nil {
		return 0, 0, err
	}
	return p.Page()
}
