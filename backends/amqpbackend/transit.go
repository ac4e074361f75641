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

// sent is one queue's messages in transit, in publish order, and the
// latest of each ID (a retried job publishes its ID again).
type sent struct {
	byID  map[string]*sentMsg
	order []*sentMsg
}

type sentMsg struct {
	id      string
	at      time.Time
	arrived bool
}

func (t *transit) add(q, id string, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.byQueue == nil {
		t.byQueue = map[string]*sent{}
	}
	s := t.byQueue[q]
	if s == nil {
		s = &sent{byID: map[string]*sentMsg{}}
		t.byQueue[q] = s
	}
	m := &sentMsg{id: id, at: at}
	s.byID[id] = m
	s.order = append(s.order, m)
}

// arrived marks the latest message with that ID arrived (or its publish
// failed).
func (t *transit) arrived(q, id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s := t.byQueue[q]; s != nil {
		if m := s.byID[id]; m != nil {
			m.arrived = true
			delete(s.byID, id)
		}
	}
}

// pending counts, up to limit+1, the messages for q published between
// since and before that have not arrived, and forgets those older than
// since or arrived at the front.
func (t *transit) pending(q string, since, before time.Time, limit int) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.byQueue[q]
	if s == nil {
		return 0
	}
	drop := 0
	for drop < len(s.order) && (s.order[drop].arrived || s.order[drop].at.Before(since)) {
		if m := s.order[drop]; s.byID[m.id] == m {
			delete(s.byID, m.id)
		}
		s.order[drop] = nil
		drop++
	}
	s.order = s.order[drop:]
	if len(s.order) == 0 {
		s.order = nil // let the backing array go
	}
	n := 0
	for _, m := range s.order {
		if !m.at.Before(before) || n > limit {
			break
		}
		if !m.arrived {
			n++
		}
	}
	return n
}
