package record

import "github.com/conveyorhq/conveyor/backends"

// Fill is the loop of a backends.ExhaustiveReserver's reserve: it runs
// pick, asking for what is left of limit (at most most a run, when most is
// above 0), until limit jobs are leased or held back or a run took fewer
// than it was asked for: the queue had nothing else due. took counts what
// a run took, the jobs it dead-lettered on the way (poison, corrupt
// records) included, so a full run that lost some to the dead letters is
// run again for their places. An error after jobs were leased returns
// those jobs; the next reserve meets it again.
func Fill(limit, most int, pick func(limit int) (res backends.ReserveSlotsResult, took int, err error)) (backends.ReserveSlotsResult, error) {
	var all backends.ReserveSlotsResult
	for {
		ask := limit - len(all.Jobs) - len(all.HeldBack)
		if most > 0 {
			ask = min(ask, most)
		}
		res, took, err := pick(ask)
		if err != nil {
			if len(all.Jobs)+len(all.HeldBack) > 0 {
				return all, nil
			}
			return res, err
		}
		all.Jobs, all.HeldBack = append(all.Jobs, res.Jobs...), append(all.HeldBack, res.HeldBack...)
		if took < ask || len(all.Jobs)+len(all.HeldBack) >= limit {
			return all, nil
		}
	}
}
