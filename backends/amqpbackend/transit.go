package amqpbackend

import (
	"sync"
	"time"
)

// transit remembers the messages this process publishes straight into a
// work queue until a consumer of this process receives them. A broker
// pushes deliveries asynchronously, so a Reserve right after an Enqueue
// could otherwise miss a job whose confirm has come but whose delivery has
// not; Reserve waits for those (see consumer.awaitTransit). A message is
// remembered from before its publish, so its arrival can never come first,
// and forgotten after Config.TransitWait if another process took it.
type transit struct {
	mu      sync.Mutex
	byQueue map[string]*sent
}

// sent is one queue's messages in transit: a count per message ID (a
// retried job publishes its ID again), and the IDs in publish order so
// that forgetting old ones costs no scan.
type sent struct {
	ids   map[string]int
	total int
	order []sentMsg
}

type sentMsg struct {
	id string
	at time.Time
}

func (t *transit) add(q, id string, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.byQueue == nil {
		t.byQueue = map[string]*sent{}
	}
	s := t.byQueue[q]
	if s == nil {
		s = &sent{ids: map[string]int{}}
		t.byQueue[q] = s
	}
	s.ids[id]++
	s.total++
	s.order = append(s.order, sentMsg{id, at})
}

// arrived forgets one message with that ID: it arrived, or its publish
// failed.
func (t *transit) arrived(q, id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s := t.byQueue[q]; s != nil {
		s.forget(id)
	}
}

func (s *sent) forget(id string) {
	if n := s.ids[id]; n > 0 {
		s.total--
		if n == 1 {
			delete(s.ids, id)
		} else {
			s.ids[id] = n - 1
		}
	}
}

// pending counts the messages for q published since then that have not
// arrived, forgetting older ones.
func (t *transit) pending(q string, since time.Time) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.byQueue[q]
	if s == nil {
		return 0
	}
	n := 0
	for n < len(s.order) && s.order[n].at.Before(since) {
		s.forget(s.order[n].id)
		n++
	}
	s.order = s.order[n:]
	if s.total == 0 {
		s.order = nil // all arrived: let the backing array go
	}
	return s.total
}
