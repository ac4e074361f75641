package amqpbackend

import "sync"

// recording is the jobs this process has published and is recording in
// the store: with a store an enqueue publishes first and records after
// (enqueueStored), so its own consumer may receive a job before its
// record exists. A lease that finds no record for one of these waits for
// the write (watch) instead of polling every recordPoll: on the workflow
// bench, that poll was a plain job's 12.7 ms pickup p99 on RabbitMQ with a
// store, against a 1.6 ms median. Another process's jobs are polled still.
type recording struct {
	mu  sync.Mutex
	ids map[string]*recordingJob
}

type recordingJob struct {
	n    int           // enqueues of this ID under way (a caller may repeat one)
	done chan struct{} // closed when the last of them has written or given up
}

// start marks ids as being recorded, before they are published: so a
// delivery of one can never be handled before its start.
func (r *recording) start(ids []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ids == nil {
		r.ids = map[string]*recordingJob{}
	}
	for _, id := range ids {
		j := r.ids[id]
		if j == nil {
			j = &recordingJob{done: make(chan struct{})}
			r.ids[id] = j
		}
		j.n++
	}
}

// finish ends start's marks, whether the records were written or not.
func (r *recording) finish(ids []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range ids {
		if j := r.ids[id]; j != nil {
			if j.n--; j.n == 0 {
				close(j.done)
				delete(r.ids, id)
			}
		}
	}
}

// watch returns a channel closed when id's recording ends, or nil when it
// is not being recorded here. Called before the store is read, it cannot
// miss a write that lands between that read and the wait.
func (r *recording) watch(id string) <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	if j := r.ids[id]; j != nil {
		return j.done
	}
	return nil
}
