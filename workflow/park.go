package workflow

import "time"

// A round of Run's that only records outcomes (a chord's members finishing
// before its last) releases nothing, yet its write is what the round that
// does release a step waits behind: Run advances one round at a time, and
// on PostgreSQL a write is a commit. Measured on the callback-latency
// workload (100 chords of 100), the slowest callback waited 7.5 ms of its
// 13.2 ms for such a round to end. So a paced round does not write a small
// record whose outcomes release nothing: it parks them, pending, until a
// new outcome of that workflow comes or parkFor has passed since the
// first unwritten one, and the round that releases the callback then
// waits behind a read at most. Parked outcomes lost in a crash are what
// the reconciler heals anyway (the jobs hold their states); Status may lag
// them by up to parkFor. Large records are not parked: their rounds are
// paced instead (heldRecords).
const parkFor = 100 * time.Millisecond

// parking is a workflow whose outcomes are parked: pending, unwritten,
// since before until.
type parking struct {
	until time.Time // its record is written in the first round from then
	n     int       // outcomes pending when parked: a new one unparks it
}

// parkedNow reports whether workflow id's pending outcomes obs stay
// parked this round, and if so when Run must look again. e.mu is held.
func (e *Engine) parkedNow(id string, obs map[string]StepState, now time.Time) (bool, time.Time) {
	p, ok := e.parked[id]
	return ok && len(obs) == p.n && now.Before(p.until), p.until
}

// park sets aside the staged writes of flights that record outcomes and
// release nothing, as parkFor says (paced: Run's rounds; Flush parks
// nothing): their outcomes go back to pending and Run's next round is
// armed for their parking's end. The others' parkings end, their records
// written or nothing left to write.
func (e *Engine) park(flights []*flight, paced bool) {
	now := time.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, f := range flights {
		if !paced || f.value == nil || f.alone || len(f.ready) > 0 || f.r.State.Final() || len(f.r.Steps) >= holdSteps {
			delete(e.parked, f.id)
			continue
		}
		p, ok := e.parked[f.id]
		if !ok {
			p.until = now.Add(parkFor)
		}
		if !now.Before(p.until) {
			delete(e.parked, f.id)
			continue
		}
		p.n = len(f.obs)
		e.parked[f.id] = p
		f.value, f.parked = nil, true
		e.keepLocked(f.id, f.obs)
		e.armAt(p.until)
	}
}
