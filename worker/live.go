package worker

import (
	"errors"
	"fmt"
	"slices"
)

// LiveConfig is what Reconfigure changes on a running worker: the fields of
// Config of the same names, with the same defaults.
type LiveConfig struct {
	Queues         []QueueConfig
	StrictPriority bool
	Concurrency    int
}

// Reconfigure changes the worker's queues, their order and weights, and its
// concurrency while it runs, without stopping a job: a lower concurrency
// starts no new job until enough running ones have finished, a higher one
// fills the new slots at once. A queue added here is fetched from at once
// and then at every PollInterval; the backend's notifications keep
// covering the queues the worker started with until it restarts.
func (w *Worker) Reconfigure(c LiveConfig) error {
	if len(c.Queues) == 0 {
		return errors.New("worker: Reconfigure needs at least one queue")
	}
	for _, q := range c.Queues {
		if q.Name == "" {
			return fmt.Errorf("worker: Reconfigure: a queue without a name in %v", c.Queues)
		}
	}
	if err := checkFair(w.b, c.Queues); err != nil {
		return err
	}
	next := w.cfg
	next.Queues, next.StrictPriority, next.Concurrency = slices.Clone(c.Queues), c.StrictPriority, c.Concurrency
	next = next.withDefaults()
	w.mu.Lock()
	w.cfg.Queues, w.cfg.StrictPriority, w.cfg.Concurrency = next.Queues, next.StrictPriority, next.Concurrency
	w.indexQueues()
	w.mu.Unlock()
	w.dry.wet("")
	w.signal()
	return nil
}

// Pause stops the worker fetching: it starts no new job, while the jobs it
// runs go on (their leases extended) and it stays in the list of workers.
// It is the quiet step of a deploy's cut-over; Resume undoes it.
func (w *Worker) Pause() {
	w.mu.Lock()
	w.paused = true
	w.mu.Unlock()
}

// Resume lets a paused worker fetch again.
func (w *Worker) Resume() {
	w.mu.Lock()
	w.paused = false
	w.mu.Unlock()
	w.signal()
}

// Paused reports whether Pause is in effect.
func (w *Worker) Paused() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.paused
}

// live returns the settings Reconfigure changes, read together.
func (w *Worker) live() LiveConfig {
	w.mu.Lock()
	defer w.mu.Unlock()
	return LiveConfig{Queues: w.cfg.Queues, StrictPriority: w.cfg.StrictPriority, Concurrency: w.cfg.Concurrency}
}

// indexQueues maps the names of w.cfg.Queues to their places, for
// queueNamed. Called with w.mu held (or before the worker is shared).
func (w *Worker) indexQueues() {
	w.queueAt = make(map[string]int, len(w.cfg.Queues))
	for i, q := range w.cfg.Queues {
		w.queueAt[q.Name] = i
	}
}

// queueNamed is the configured queue of that name, nil if the worker does
// not serve it (any more). Called with w.mu held: a worker of many queues
// looks each job's queue up by name, not along the list.
func (w *Worker) queueNamed(name string) *QueueConfig {
	if i, ok := w.queueAt[name]; ok {
		return &w.cfg.Queues[i]
	}
	return nil
}
