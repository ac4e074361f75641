package redisbackend

import (
	"context"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
)

var _ backends.FairReserver = (*Backend)(nil)

// fairIndexFor is how long a queue keeps indexing its due jobs by group
// after its last fair reserve. A worker serving a fair queue reserves far
// more often; once none has for this long, the janitor drops the index, so
// a queue no longer served fairly stops paying for it.
const fairIndexFor = 10 * time.Minute

// fairIndexBatch is how many pending jobs a fair reserve indexes by group
// while a queue's index is being built: about 50 ms of Redis's time.
const fairIndexBatch = 10_000

// ReserveFair implements backends.FairReserver in one script run, as
// Reserve (lua/reserve_fair.lua). Its cost grows with the number of groups
// passed over for having no due job, not with their backlogs. The first
// fair reserves of a queue (the first ones after fairIndexFor without one)
// index its pending jobs by group, fairIndexBatch a call, newest first.
func (b *Backend) ReserveFair(ctx context.Context, p backends.ReserveParams) ([]*job.Record, error) {
	if err := b.gate.Valid(ctx, p); err != nil {
		return nil, err
	}
	res, err := b.reserveAll(ctx, p, variant{fair: true})
	return res.Jobs, err
}
