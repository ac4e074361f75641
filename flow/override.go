package flow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
)

// Override changes a limit's figures at run time, for every worker on the
// backend, without a restart or a deploy: it is kept in the backend's
// KVStore and every gate reads it again within OverrideRefresh. It applies
// to the limit of its Kind and Name, whoever declared it (a task, a queue,
// several tasks sharing a name); a worker whose task or queue declares no
// limit of that kind under its default name (the task's name,
// "queue:<name>") gets one, so a queue can be rate-limited from outside
// the code. Its key function and backoff stay the declared ones (per job
// key, for a limit the override adds). Removing it brings back the
// declared figures.
type Override struct {
	Kind string `json:"kind"` // KindRate or KindConcurrency
	Name string `json:"name"`
	// Limit replaces the limit's Limit. Required (at least 1).
	Limit int `json:"limit"`
	// Per and Burst replace a rate limit's; zero keeps the declared ones
	// (Per 1s for a limit the override adds, Burst its Limit).
	Per   time.Duration `json:"per,omitempty"`
	Burst int           `json:"burst,omitempty"`
	// SetAt is when it was set, filled by SetOverride.
	SetAt time.Time `json:"set_at"`
}

// OverrideRefresh is how often a gate reads the overrides again: a change
// holds on every worker within it. One KV listing a second per worker.
const OverrideRefresh = time.Second

// overridesPrefix starts the KVStore key of each override: the kind, then
// the name.
const overridesPrefix = "flow/overrides/"

func overrideKey(kind, name string) string { return overridesPrefix + kind + "/" + name }

// Validate checks o's fields; the error wraps job.ErrInvalid.
func (o Override) Validate() error {
	switch {
	case o.Kind != KindRate && o.Kind != KindConcurrency:
		return fmt.Errorf("%w: override %q: kind %q is neither %s nor %s", job.ErrInvalid, o.Name, o.Kind, KindRate, KindConcurrency)
	case o.Name == "":
		return fmt.Errorf("%w: an override needs the name of the limit it changes", job.ErrInvalid)
	case o.Limit < 1 || o.Per < 0 || o.Burst < 0:
		return fmt.Errorf("%w: override %q: Limit must be at least 1, Per and Burst not negative", job.ErrInvalid, o.Name)
	case o.Kind == KindConcurrency && (o.Per != 0 || o.Burst != 0):
		return fmt.Errorf("%w: override %q: a concurrency limit has no Per or Burst", job.ErrInvalid, o.Name)
	}
	return nil
}

func kvOf(b backends.Backend) (backends.KVStore, error) {
	kv, ok := b.(backends.KVStore)
	if !ok {
		return nil, fmt.Errorf("%w: overrides of limits are kept in a backends.KVStore; %T is not one", job.ErrUnsupported, b)
	}
	return kv, nil
}

// SetOverride sets (or replaces) an override of a limit on b; every
// worker applies it within OverrideRefresh.
func SetOverride(ctx context.Context, b backends.Backend, o Override) error {
	if err := o.Validate(); err != nil {
		return err
	}
	kv, err := kvOf(b)
	if err != nil {
		return err
	}
	o.SetAt = time.Now().UTC()
	v, _ := json.Marshal(o)
	key := overrideKey(o.Kind, o.Name)
	for attempt := 1; ; attempt++ {
		var version int64
		got, err := kv.GetKV(ctx, backends.GetKVParams{Key: key})
		switch {
		case errors.Is(err, job.ErrNotFound):
		case err != nil:
			return fmt.Errorf("flow: reading override %s: %w", key, err)
		default:
			version = got.Version
		}
		_, err = kv.PutKV(ctx, backends.PutKVParams{Key: key, Value: v, IfVersion: version})
		if errors.Is(err, job.ErrConflict) && attempt < 16 && ctx.Err() == nil {
			continue // set at the same moment: the last one wins
		}
		if err != nil {
			return fmt.Errorf("flow: writing override %s: %w", key, err)
		}
		return nil
	}
}

// RemoveOverride removes the override of the limit of kind and name, if
// any: the declared figures hold again within OverrideRefresh.
func RemoveOverride(ctx context.Context, b backends.Backend, kind, name string) error {
	kv, err := kvOf(b)
	if err != nil {
		return err
	}
	if err := kv.DeleteKV(ctx, backends.DeleteKVParams{Key: overrideKey(kind, name)}); err != nil {
		return fmt.Errorf("flow: removing override %s/%s: %w", kind, name, err)
	}
	return nil
}

// Overrides lists the overrides set on b, by kind and name.
func Overrides(ctx context.Context, b backends.Backend) ([]Override, error) {
	kv, err := kvOf(b)
	if err != nil {
		return nil, err
	}
	return listOverrides(ctx, kv, time.Time{})
}

func listOverrides(ctx context.Context, kv backends.KVStore, now time.Time) ([]Override, error) {
	kvs, err := kv.ListKV(ctx, backends.ListKVParams{Prefix: overridesPrefix, Now: now})
	if err != nil {
		return nil, fmt.Errorf("flow: listing overrides: %w", err)
	}
	out := make([]Override, 0, len(kvs))
	for _, e := range kvs {
		var o Override
		// One this code cannot read (a newer version's) is skipped: the
		// declared figures hold rather than a guess.
		if json.Unmarshal(e.Value, &o) == nil && o.Validate() == nil && strings.HasSuffix(e.Key, "/"+o.Name) {
			out = append(out, o)
		}
	}
	return out, nil
}

// overrides is a gate's copy of the overrides, read again once older than
// OverrideRefresh by the one caller that finds it so; the others use the
// copy they have, so admission waits for a listing at most once a second.
type overrides struct {
	kv  backends.KVStore // nil: the backend keeps none
	mu  sync.Mutex       // held while listing
	cur atomic.Pointer[overrideSet]
}

type overrideSet struct {
	at time.Time
	of map[string]Override // by limitID
}

// get returns the overrides in force at now, listing them again if due.
// A listing that fails keeps the copy (none at first) until the next try.
func (o *overrides) get(ctx context.Context, now time.Time) *overrideSet {
	s := o.cur.Load()
	if o.kv == nil || s != nil && now.Sub(s.at) < OverrideRefresh && !now.Before(s.at) {
		return s
	}
	if s == nil {
		o.mu.Lock() // the first admission waits: a limit lowered must hold from the start
	} else if !o.mu.TryLock() {
		return s
	}
	defer o.mu.Unlock()
	if cur := o.cur.Load(); cur != s {
		return cur // another caller listed them meanwhile
	}
	next := &overrideSet{at: now, of: map[string]Override{}}
	list, err := listOverrides(ctx, o.kv, now)
	if err != nil && s != nil {
		next.of = s.of
	}
	for _, ov := range list {
		next.of[limitID(ov.Kind, ov.Name)] = ov
	}
	o.cur.Store(next)
	return next
}

// cached returns the overrides last read, without reading them.
func (o *overrides) cached() *overrideSet { return o.cur.Load() }

// find returns the override of kind and name, if any.
func (s *overrideSet) find(kind, name string) (Override, bool) {
	if s == nil || len(s.of) == 0 { // the common case, asked for every delivery: no key built
		return Override{}, false
	}
	ov, ok := s.of[limitID(kind, name)]
	return ov, ok
}

// rate applies the override of r (its defaults filled), if any.
func (s *overrideSet) rate(r RateLimit) (RateLimit, bool) {
	ov, ok := s.find(KindRate, r.Name)
	if !ok {
		return r, false
	}
	if ov.Per != 0 {
		r.Per = ov.Per
	}
	if ov.Burst != 0 { // else the declared Burst, or the new Limit if none was
		r.Burst = ov.Burst
	}
	r.Limit = ov.Limit
	return r, true
}

// concurrency applies the override of c (its defaults filled), if any.
func (s *overrideSet) concurrency(c ConcurrencyLimit) (ConcurrencyLimit, bool) {
	ov, ok := s.find(KindConcurrency, c.Name)
	if !ok {
		return c, false
	}
	c.Limit = ov.Limit
	return c, true
}

// Override returns the override of the limit of kind and name in force
// at the gate, as last read: for a worker adding the limit an override
// names to a task or queue that declares none.
func (g *Gate) Override(ctx context.Context, kind, name string) (Override, bool) {
	return g.ov.get(ctx, g.clock.Now()).find(kind, name)
}

// ParseOverride reads an override written as String writes it, the form
// the daemon's config and the CLI take: KIND:NAME=LIMIT[/PER[:BURST]],
// e.g. "rate:queue:email=100/1m:20" (100 a minute, bursts of 20),
// "rate:api=5/s", "concurrency:shopify.sync=3". PER is a Go duration; a
// bare unit means one of it; none keeps the declared one ("rate:api=5" or,
// with a burst, "rate:api=5/:10"). The error wraps job.ErrInvalid.
func ParseOverride(s string) (Override, error) {
	bad := func(why string) (Override, error) {
		return Override{}, fmt.Errorf("%w: override %q: %s (want KIND:NAME=LIMIT[/PER[:BURST]], e.g. rate:queue:email=100/1m)", job.ErrInvalid, s, why)
	}
	kind, rest, ok := strings.Cut(strings.TrimSpace(s), ":")
	at := strings.LastIndex(rest, "=")
	if !ok || at < 0 {
		return bad("no KIND: or =")
	}
	o := Override{Kind: kind, Name: rest[:at]}
	num, per, hasPer := strings.Cut(rest[at+1:], "/")
	var err error
	if o.Limit, err = strconv.Atoi(num); err != nil {
		return bad("LIMIT is not a whole number")
	}
	if hasPer {
		per, burst, hasBurst := strings.Cut(per, ":")
		if per != "" && (per[0] < '0' || per[0] > '9') {
			per = "1" + per
		}
		if per != "" { // empty: the declared interval, with a new burst
			if o.Per, err = time.ParseDuration(per); err != nil || o.Per <= 0 {
				return bad("PER is not a duration like 1s or 5m")
			}
		}
		if hasBurst {
			if o.Burst, err = strconv.Atoi(burst); err != nil {
				return bad("BURST is not a whole number")
			}
		}
	}
	if err := o.Validate(); err != nil {
		return Override{}, err
	}
	return o, nil
}

// String writes o as ParseOverride reads it.
func (o Override) String() string {
	s := o.Kind + ":" + o.Name + "=" + strconv.Itoa(o.Limit)
	if o.Per != 0 {
		s += "/" + o.Per.String()
		if o.Burst != 0 {
			s += ":" + strconv.Itoa(o.Burst)
		}
	} else if o.Burst != 0 {
		s += "/:" + strconv.Itoa(o.Burst)
	}
	return s
}
