package workflow

import (
	"fmt"
	"time"

	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
)

// Node is a piece of a workflow: one Step, or a Chain, Group, Chord or DAG
// of nodes. Nodes nest: a chain of groups, a chord inside a chain.
type Node interface {
	// add puts the node's steps into b with deps as the dependencies of
	// its entry steps, and returns its exit steps (those nothing in the
	// node depends on), which whatever follows the node depends on.
	add(b *builder, deps []string) (sinks []string)
}

// Step is one task run in a workflow: a name unique in the workflow, the
// task with its arguments, and the steps it depends on. Build it with
// Task; its methods return changed copies, so a Step can be reused.
type Step struct {
	name         string
	spec         stepSpec
	err          error // the arguments did not encode, or the options are bad
	after        []string
	allowFailure bool
}

// Task makes a step that runs task t with args. opts may be nil; its ID and
// UniqueKey are not used: a step's job ID is the workflow's ("wf-<workflow
// ID>-<step name>"), which already makes every enqueue of the step
// idempotent. The handler is the task's own, unchanged: it reads the results
// of the steps it depends on from its context (Result, Previous, All).
func Task[A, R any](name string, t *queue.Task[A, R], args A, opts *queue.EnqueueOptions) *Step {
	s := &Step{name: name}
	var o queue.EnqueueOptions
	if opts != nil {
		o = *opts
	}
	// The task's own request path checks what it checks for any enqueue.
	if err := t.Request(args, &queue.EnqueueOptions{Queue: o.Queue, Headers: o.Headers}).Err(); err != nil {
		s.err = err
		return s
	}
	to := t.Options()
	payload, err := to.Codec.Encode(args)
	if err != nil {
		s.err = fmt.Errorf("task %s: encode arguments: %w", t.Name(), err)
		return s
	}
	s.spec = stepSpec{
		Task: t.Name(), Payload: payload, Headers: o.Headers,
		Queue: or(o.Queue, to.Queue), Priority: or(o.Priority, to.Priority),
		Timeout: or(o.Timeout, to.Timeout), MaxDeliveries: to.MaxDeliveries,
		RetryPolicy: o.RetryPolicy, Delay: o.Delay, RunAt: o.RunAt,
	}
	return s
}

// After returns a copy of s that depends on the named steps as well as on
// whatever its place in a Chain or Chord makes it depend on. It is how a
// DAG's edges are drawn.
func (s *Step) After(steps ...string) *Step {
	c := *s
	c.after = append(append([]string(nil), s.after...), steps...)
	return &c
}

// AllowFailure returns a copy of s that runs once its dependencies have
// finished even when some ended dead or cancelled, the failure visible to
// it: Result of a failed dependency returns an error wrapping
// ErrStepFailed and that step's last error. The default is that a failed
// dependency cancels the step (and so its own dependents). A Chord whose
// callback allows failure is a Sidekiq-style batch callback: "when all of
// these finished, success or not, run this".
func (s *Step) AllowFailure() *Step {
	c := *s
	c.allowFailure = true
	return &c
}

// Name returns the step's name.
func (s *Step) Name() string { return s.name }

func (s *Step) add(b *builder, deps []string) []string {
	b.step(s, deps)
	return []string{s.name}
}

// Chain runs nodes one after the other: each node's entry steps depend on
// the previous node's exit steps, so a step after a Group receives every
// member's result, and a step after a step receives its result (Previous).
func Chain(nodes ...Node) Node { return chain(nodes) }

type chain []Node

func (c chain) add(b *builder, deps []string) []string {
	for _, n := range c {
		deps = n.add(b, deps)
	}
	return deps
}

// Group runs nodes in parallel. Whatever follows the group depends on
// every member's exit steps and receives their results in the group's
// order (All).
func Group(nodes ...Node) Node { return group(nodes) }

type group []Node

func (g group) add(b *builder, deps []string) []string {
	var sinks []string
	for _, n := range g {
		sinks = append(sinks, n.add(b, deps)...)
	}
	return sinks
}

// Chord runs members in parallel, then callback, which receives every
// member's result in order (All): Chain(Group(members...), callback).
func Chord(callback *Step, members ...Node) Node {
	return Chain(Group(members...), callback)
}

// DAG is a general graph of steps whose edges are the steps' After names.
// Its entry steps are those with no After; they depend on whatever precedes
// the DAG. Its exit steps are those no other step of the DAG names, which
// whatever follows the DAG depends on. A name in After may be any step of
// the workflow; a cycle or an unknown name is refused at Enqueue.
func DAG(steps ...*Step) Node { return dag(steps) }

type dag []*Step

func (d dag) add(b *builder, deps []string) []string {
	named := map[string]bool{}
	for _, s := range d {
		for _, a := range s.after {
			named[a] = true
		}
	}
	var sinks []string
	for _, s := range d {
		if len(s.after) == 0 {
			b.step(s, deps)
		} else {
			b.step(s, nil)
		}
		if !named[s.name] {
			sinks = append(sinks, s.name)
		}
	}
	return sinks
}

// maxStepName bounds a step's name: it becomes part of the job ID, at most
// 128 bytes with "wf-", the workflow ID and "-".
const maxStepName = 48

// maxWorkflowID bounds a workflow's ID for the same reason.
const maxWorkflowID = 72

// builder flattens a node tree into the record's steps, checking names.
type builder struct {
	steps []*stepRecord
	index map[string]int
	err   error
}

func (b *builder) fail(err error) {
	if b.err == nil {
		b.err = err
	}
}

func (b *builder) step(s *Step, deps []string) {
	if s == nil {
		b.fail(fmt.Errorf("%w: workflow: a nil step", job.ErrInvalid))
		return
	}
	if err := validName("step name", s.name, maxStepName); err != nil {
		b.fail(err)
		return
	}
	if s.err != nil {
		b.fail(fmt.Errorf("step %s: %w", s.name, s.err))
		return
	}
	if _, dup := b.index[s.name]; dup {
		b.fail(fmt.Errorf("%w: workflow: two steps are named %q", job.ErrInvalid, s.name))
		return
	}
	all := append(append([]string(nil), deps...), s.after...)
	b.index[s.name] = len(b.steps)
	b.steps = append(b.steps, &stepRecord{stepDef: &stepDef{Name: s.name, Deps: dedupe(all), AllowFailure: s.allowFailure, Spec: s.spec}, State: StepBlocked})
}

// build flattens root into steps and checks the graph: every dependency
// names a step, no step depends on itself through any path.
func build(root Node) ([]*stepRecord, error) {
	if root == nil {
		return nil, fmt.Errorf("%w: workflow: no steps", job.ErrInvalid)
	}
	b := &builder{index: map[string]int{}}
	root.add(b, nil)
	if b.err != nil {
		return nil, b.err
	}
	if len(b.steps) == 0 {
		return nil, fmt.Errorf("%w: workflow: no steps", job.ErrInvalid)
	}
	if err := check(b.steps, b.index); err != nil {
		return nil, err
	}
	return b.steps, nil
}

// check checks a graph: every dependency names a step, and no step
// depends on itself through any path.
func check(steps []*stepRecord, index map[string]int) error {
	for _, s := range steps {
		for _, d := range s.Deps {
			if _, ok := index[d]; !ok {
				return fmt.Errorf("%w: workflow: step %s depends on %q, which is no step of the workflow", job.ErrInvalid, s.Name, d)
			}
		}
	}
	if cyc := findCycle(steps, index); cyc != nil {
		return fmt.Errorf("%w: workflow: the steps form a cycle: %v", job.ErrInvalid, cyc)
	}
	return nil
}

// findCycle returns the steps of one cycle, or nil (depth-first search
// with three colours, iterative so that 10,000-step chains do not recurse).
func findCycle(steps []*stepRecord, index map[string]int) []string {
	const (
		white = iota
		grey
		black
	)
	colour := make([]int, len(steps))
	type frame struct{ at, next int }
	for start := range steps {
		if colour[start] != white {
			continue
		}
		stack := []frame{{start, 0}}
		colour[start] = grey
		for len(stack) > 0 {
			f := &stack[len(stack)-1]
			deps := steps[f.at].Deps
			if f.next == len(deps) {
				colour[f.at] = black
				stack = stack[:len(stack)-1]
				continue
			}
			d := index[deps[f.next]]
			f.next++
			switch colour[d] {
			case grey:
				var cyc []string
				for i := len(stack) - 1; i >= 0; i-- {
					cyc = append(cyc, steps[stack[i].at].Name)
					if stack[i].at == d {
						break
					}
				}
				return cyc
			case white:
				colour[d] = grey
				stack = append(stack, frame{d, 0})
			}
		}
	}
	return nil
}

// validName checks a name that becomes part of job IDs and storage keys:
// printable ASCII without spaces or commas (a header lists step names
// with commas), not empty, at most max bytes.
func validName(what, s string, max int) error {
	if s == "" || len(s) > max {
		return fmt.Errorf("%w: workflow: %s %q must be 1 to %d bytes", job.ErrInvalid, what, s, max)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c > '~' || c == ',' {
			return fmt.Errorf("%w: workflow: %s %q has byte %#x; use printable ASCII without spaces or commas", job.ErrInvalid, what, s, c)
		}
	}
	return nil
}

func dedupe(names []string) []string {
	seen := map[string]bool{}
	out := names[:0]
	for _, n := range names {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}

func or[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// stepSpec is what enqueueing a step's job needs, stored in the record so
// that any process can enqueue it when its dependencies have finished,
// without the step's typed task in hand.
type stepSpec struct {
	Task          string            `json:"task"`
	Payload       []byte            `json:"payload,omitempty"`
	Headers       map[string]string `json:"headers,omitempty"`
	Queue         string            `json:"queue"`
	Priority      int               `json:"priority,omitempty"`
	Timeout       time.Duration     `json:"timeout,omitempty"`
	MaxDeliveries int               `json:"max_deliveries,omitempty"` // as stored in a job: 0 is no bound
	RetryPolicy   string            `json:"retry_policy,omitempty"`
	Delay         time.Duration     `json:"delay,omitempty"` // from the step's release
	RunAt         time.Time         `json:"run_at,omitzero"`
}
