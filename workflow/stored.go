package workflow

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
)

// A workflow is stored in two parts, so that an advance writes what
// changed and not what every step will be enqueued with:
//
//   - its spec, workflow-spec/<id>/<token>: every step's name,
//     dependencies, policy and job spec, written once by Enqueue (and
//     again, under a new token, by each Add) and never changed; a process
//     reads it once per token and keeps it (specCache).
//   - its state, workflow/<id>: the whole's state and flags, the spec's
//     token, and each step's state and times in a compact binary form
//     (a few bytes a step), changed only by compare-and-set.
//
// The state names its spec, so one compare-and-set of the state is still
// the only step that makes any change visible: a spec nobody names yet is
// invisible, and the spec a state names never changes.

// stepDef is what a step is, fixed once the step is added: shared by
// every load of the workflow in a process.
type stepDef struct {
	Name         string   `json:"name"`
	Deps         []string `json:"deps,omitempty"`
	AllowFailure bool     `json:"allow_failure,omitempty"`
	Spec         stepSpec `json:"spec"`
}

// specPrefix starts the keys of workflows' specs; it is not under
// keyPrefix, so that listing the records lists no spec.
const specPrefix = "workflow-spec/"

func specKey(id, token string) string { return specPrefix + id + "/" + token }

// spec is one stored spec, decoded, with the indexes its readers need.
type spec struct {
	defs []*stepDef
	graph
	version atomic.Int64 // of its key, for rewriting its expiry; engines share it
}

// graph indexes a workflow's steps by position, so that settling a
// 10,000-member chord's callback each round reads slices, not a map.
type graph struct {
	index      map[string]int // step name -> position
	deps       [][]int        // position -> positions of its dependencies
	dependents [][]int        // position -> positions of the steps depending on it
}

func newSpec(defs []*stepDef) *spec {
	g := graph{index: make(map[string]int, len(defs)), deps: make([][]int, len(defs)), dependents: make([][]int, len(defs))}
	for i, d := range defs {
		g.index[d.Name] = i
	}
	for i, d := range defs {
		for _, dep := range d.Deps {
			if j, ok := g.index[dep]; ok {
				g.deps[i] = append(g.deps[i], j)
				g.dependents[j] = append(g.dependents[j], i)
			}
		}
	}
	return &spec{defs: defs, graph: g}
}

// specCache keeps the specs a process read or wrote, by key: a spec never
// changes, so an advance of a 10,000-step workflow reads and decodes only
// its state. It holds at most maxCachedSteps steps; past that it forgets
// specs at random (each is read again when needed).
//
// One cache serves the whole process (cachedSpecs), so that the engine
// advancing a 10,000-member group does not decode again the 1 MB spec its
// Enqueue call just wrote. That is safe across backends because a spec's
// key holds a UUIDv7 token made when it was written, never reused.
type specCache struct {
	mu    sync.Mutex
	specs map[string]*spec
	steps int
}

const maxCachedSteps = 200_000

var cachedSpecs = &specCache{}

func (c *specCache) get(key string) *spec {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.specs[key]
}

func (c *specCache) put(key string, sp *spec) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.specs == nil {
		c.specs = map[string]*spec{}
	}
	if old, ok := c.specs[key]; ok {
		c.steps -= len(old.defs)
	}
	for k, old := range c.specs {
		if c.steps+len(sp.defs) <= maxCachedSteps {
			break
		}
		delete(c.specs, k)
		c.steps -= len(old.defs)
	}
	c.specs[key] = sp
	c.steps += len(sp.defs)
}

func (c *specCache) drop(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.specs[key]; ok {
		delete(c.specs, key)
		c.steps -= len(old.defs)
	}
}

// putSpec writes r's steps as a new spec under a new token, names it in r
// (not yet stored: the caller saves r) and keeps it in the cache.
func (s *store) putSpec(ctx context.Context, r *record) error {
	put, named, err := s.newSpec(r)
	if err != nil {
		return err
	}
	v, err := s.kv.PutKV(ctx, put)
	if err != nil {
		return fmt.Errorf("workflow %s: spec: %w", r.ID, err)
	}
	named(v)
	return nil
}

// newSpec returns the put of r's steps as a new spec under a new token,
// and what names it in r once written at a version.
func (s *store) newSpec(r *record) (backends.PutKVParams, func(version int64), error) {
	defs := make([]*stepDef, len(r.Steps))
	for i, st := range r.Steps {
		defs[i] = st.stepDef
	}
	b, err := json.Marshal(defs)
	if err != nil {
		return backends.PutKVParams{}, nil, fmt.Errorf("workflow %s: spec: %w", r.ID, err)
	}
	token := uuid.Must(uuid.NewV7()).String()
	put := backends.PutKVParams{Key: specKey(r.ID, token), Value: b, Now: s.now()}
	return put, func(v int64) {
		sp := newSpec(defs)
		sp.version.Store(v)
		r.Spec, r.graph = token, sp.graph
		s.specs.put(put.Key, sp)
	}, nil
}

// loadSpec returns workflow id's spec token, from the cache or the store.
func (s *store) loadSpec(ctx context.Context, id, token string) (*spec, error) {
	k := specKey(id, token)
	if sp := s.specs.get(k); sp != nil {
		return sp, nil
	}
	kv, err := s.kv.GetKV(ctx, backends.GetKVParams{Key: k, Now: s.now()})
	if err != nil {
		return nil, err
	}
	return s.cacheSpec(id, kv)
}

// cacheSpec decodes workflow id's spec as read and keeps it.
func (s *store) cacheSpec(id string, kv backends.KV) (*spec, error) {
	var defs []*stepDef
	if err := json.Unmarshal(kv.Value, &defs); err != nil {
		return nil, fmt.Errorf("%w: workflow %s: spec: %w", job.ErrMalformedPayload, id, err)
	}
	sp := newSpec(defs)
	sp.version.Store(kv.Version)
	s.specs.put(kv.Key, sp)
	return sp, nil
}

// readSpecs reads into the cache, in one GetKVMany, the specs the states
// read name and the cache lacks: a round of advances that meets many
// workflows for the first time (started by another process) then reads
// their specs in one round trip, not one each. One it cannot read or
// decode is left for loadSpec to read again, and report.
func (s *store) readSpecs(ctx context.Context, states []backends.KV) {
	var keys, ids []string
	for _, kv := range states {
		if kv.Version == 0 {
			continue
		}
		r, _, err := decodeState(kv.Value)
		if err != nil {
			continue
		}
		if k := specKey(r.ID, r.Spec); s.specs.get(k) == nil {
			keys, ids = append(keys, k), append(ids, r.ID)
		}
	}
	for len(keys) > 0 {
		n := min(len(keys), kvBatch)
		kvs, err := s.batch.GetKVMany(ctx, backends.GetKVManyParams{Keys: keys[:n], Now: s.now()})
		if err != nil {
			return
		}
		for i, kv := range kvs {
			if kv.Version != 0 {
				_, _ = s.cacheSpec(ids[i], kv)
			}
		}
		keys, ids = keys[n:], ids[n:]
	}
}

// dropSpec deletes a spec no state names (an Add that lost its
// compare-and-set, or the spec an Add replaced). Best effort: a spec left
// behind is found when the workflow finishes (sweepSpecs).
func (s *store) dropSpec(ctx context.Context, id, token string) {
	s.specs.drop(specKey(id, token))
	_ = s.kv.DeleteKV(ctx, backends.DeleteKVParams{Key: specKey(id, token)})
}

// expireSpec gives r's spec r's expiry (zero: none, for a reopened
// workflow), rewriting it whole: a spec outlives no record and no record
// outlives its spec. A grown workflow's other specs (left by an Add that
// died midway) are deleted.
func (s *store) expireSpec(ctx context.Context, r *record, at time.Time) error {
	k := specKey(r.ID, r.Spec)
	for range casAttempts {
		sp, err := s.loadSpec(ctx, r.ID, r.Spec)
		if err != nil {
			return err
		}
		put, err := s.expiringSpec(k, sp, at)
		if err != nil {
			return err
		}
		v, err := s.kv.PutKV(ctx, put)
		if errors.Is(err, job.ErrConflict) { // another process rewrote it: read its version
			s.specs.drop(k)
			continue
		}
		if err != nil {
			return err
		}
		sp.version.Store(v)
		break
	}
	if r.Grown && !at.IsZero() {
		s.sweepSpecs(ctx, r.ID, r.Spec)
	}
	return nil
}

// expiringSpec is the put that rewrites spec sp, stored at k, to expire
// at at.
func (s *store) expiringSpec(k string, sp *spec, at time.Time) (backends.PutKVParams, error) {
	b, err := json.Marshal(sp.defs)
	if err != nil {
		return backends.PutKVParams{}, err
	}
	return backends.PutKVParams{Key: k, Value: b, IfVersion: sp.version.Load(), ExpiresAt: at, Now: s.now()}, nil
}

// sweepSpecs deletes workflow id's specs but keep (every one when keep
// is empty).
func (s *store) sweepSpecs(ctx context.Context, id, keep string) {
	kvs, err := s.kv.ListKV(ctx, backends.ListKVParams{Prefix: specPrefix + id + "/", Now: s.now()})
	if err != nil {
		return
	}
	for _, kv := range kvs {
		if token := strings.TrimPrefix(kv.Key, specPrefix+id+"/"); token != keep {
			s.dropSpec(ctx, id, token)
		}
	}
}

// storedState is the stored form of a record's state.
type storedState struct {
	Format          int            `json:"format"`
	ID              string         `json:"id"`
	State           State          `json:"state"`
	AllowFailure    bool           `json:"allow_failure,omitempty"`
	CancelRequested bool           `json:"cancel_requested,omitempty"`
	Tx              bool           `json:"tx,omitempty"`
	Created         time.Time      `json:"created"`
	Finished        time.Time      `json:"finished,omitzero"`
	Spec            string         `json:"spec"`
	Grown           bool           `json:"grown,omitempty"`
	Filling         bool           `json:"filling,omitempty"`
	N               int            `json:"n"`
	Steps           []byte         `json:"-"`                 // one entry a step, after the JSON (stateMagic)
	Reasons         map[int]string `json:"reasons,omitempty"` // by step position
}

// A step's entry in storedState.Steps: a byte of its state and flags,
// then its enqueue and finish times as signed varints of nanoseconds
// since the workflow's creation, each present only when its flag is.
const (
	stepHasJob   = 1 << 3
	stepEnqueued = 1 << 4
	stepFinished = 1 << 5
	stateMask    = 7
)

var stepCodes = []StepState{StepBlocked, StepEnqueued, StepDone, StepDead, StepCancelled}

func stepCode(st StepState) byte {
	switch st {
	case StepEnqueued:
		return 1
	case StepDone:
		return 2
	case StepDead:
		return 3
	case StepCancelled:
		return 4
	}
	return 0 // StepBlocked
}

func (r *record) encode() ([]byte, error) {
	ss := storedState{Format: recordFormat, ID: r.ID, State: r.State, AllowFailure: r.AllowFailure,
		CancelRequested: r.CancelRequested, Tx: r.Tx, Created: r.Created, Finished: r.Finished,
		Spec: r.Spec, Grown: r.Grown, Filling: r.Filling, N: len(r.Steps)}
	// Offsets from the creation's wall clock, as UnixNano differences:
	// time.Sub, with its monotonic and overflow cases, was half the cost
	// of encoding a 10,000-step state, which a chord does each round.
	created := r.Created.UnixNano()
	buf := make([]byte, 0, 12*len(r.Steps))
	for i, st := range r.Steps {
		c := stepCode(st.State)
		if st.HasJob {
			c |= stepHasJob
		}
		if !st.Enqueued.IsZero() {
			c |= stepEnqueued
		}
		if !st.Finished.IsZero() {
			c |= stepFinished
		}
		buf = append(buf, c)
		if !st.Enqueued.IsZero() {
			buf = binary.AppendVarint(buf, st.Enqueued.UnixNano()-created)
		}
		if !st.Finished.IsZero() {
			buf = binary.AppendVarint(buf, st.Finished.UnixNano()-created)
		}
		if st.Reason != "" {
			if ss.Reasons == nil {
				ss.Reasons = map[int]string{}
			}
			ss.Reasons[i] = st.Reason
		}
	}
	b := make([]byte, 0, 128+len(r.ID)+len(r.Spec)+len(buf))
	return append(appendHeader(b, &ss), buf...), nil
}

// stateMagic started a stored state written before its header was binary
// (header.go): then the length of its JSON header, the header, and the
// steps' entries as they are, not in base64 inside the JSON, so that a
// load of a 10,000-step workflow scans a few bytes a step once. (A format
// 1 record starts with '{'.)
const stateMagic = 0xC2

// decodeState decodes a stored state; its steps are filled by withSpec.
func decodeState(b []byte) (*record, *storedState, error) {
	var ss storedState
	switch {
	case len(b) > 0 && b[0] == '{':
		ss.Format = 1 // refused below
	case len(b) > 0 && b[0] == headerMagic:
		steps, err := readHeader(b[1:], &ss)
		if err != nil {
			return nil, nil, err
		}
		ss.Steps = steps
	default:
		n, m := uint64(0), 0
		if len(b) > 0 && b[0] == stateMagic {
			n, m = binary.Uvarint(b[1:])
		}
		if m <= 0 || n > uint64(len(b)-1-m) {
			return nil, nil, fmt.Errorf("%w: workflow record: not a stored state", job.ErrMalformedPayload)
		}
		h := b[1+m : 1+m+int(n)]
		if err := json.Unmarshal(h, &ss); err != nil {
			return nil, nil, fmt.Errorf("%w: workflow record: %w", job.ErrMalformedPayload, err)
		}
		ss.Steps = b[1+m+int(n):]
	}
	if ss.Format != recordFormat {
		return nil, nil, fmt.Errorf("%w: workflow record %s has format %d, this build reads %d", job.ErrMalformedPayload, ss.ID, ss.Format, recordFormat)
	}
	r := &record{Format: ss.Format, ID: ss.ID, State: ss.State, AllowFailure: ss.AllowFailure, CancelRequested: ss.CancelRequested,
		Tx: ss.Tx, Created: ss.Created, Finished: ss.Finished, Spec: ss.Spec, Grown: ss.Grown, Filling: ss.Filling}
	return r, &ss, nil
}

// withSpec fills r's steps from its spec and the stored steps' states.
func (r *record) withSpec(sp *spec, ss *storedState) error {
	if len(sp.defs) != ss.N {
		return fmt.Errorf("%w: workflow record %s has %d steps, its spec %d", job.ErrMalformedPayload, r.ID, ss.N, len(sp.defs))
	}
	bad := fmt.Errorf("%w: workflow record %s: its steps do not decode", job.ErrMalformedPayload, r.ID)
	steps := make([]stepRecord, ss.N)
	r.Steps = make([]*stepRecord, ss.N)
	b := ss.Steps
	when := func() (time.Time, bool) {
		d, n := binary.Varint(b)
		if n <= 0 {
			return time.Time{}, false
		}
		b = b[n:]
		return r.Created.Add(time.Duration(d)), true
	}
	for i := range steps {
		if len(b) == 0 || int(b[0]&stateMask) >= len(stepCodes) {
			return bad
		}
		c := b[0]
		b = b[1:]
		st := &steps[i]
		st.stepDef, st.State, st.HasJob, st.Reason = sp.defs[i], stepCodes[c&stateMask], c&stepHasJob != 0, ss.Reasons[i]
		var ok bool
		if c&stepEnqueued != 0 {
			if st.Enqueued, ok = when(); !ok {
				return bad
			}
		}
		if c&stepFinished != 0 {
			if st.Finished, ok = when(); !ok {
				return bad
			}
		}
		r.Steps[i] = st
	}
	r.graph = sp.graph
	return nil
}
