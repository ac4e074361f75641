package workflow

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/conveyorhq/conveyor/job"
)

// headerRecord is a record with every header field set, and its spec.
func headerRecord() (*record, *spec) {
	created := time.Unix(0, 1_780_000_000_123_456_789)
	defs := []*stepDef{{Name: "a"}, {Name: "b", Deps: []string{"a"}}, {Name: "c", Deps: []string{"a"}}}
	r := &record{Format: recordFormat, ID: "w-1", State: Failed, AllowFailure: true, CancelRequested: true, Tx: true,
		Grown: true, Filling: true, Created: created, Finished: created.Add(time.Second), Spec: "token"}
	r.Steps = []*stepRecord{
		{stepDef: defs[0], State: StepDead, HasJob: true, Enqueued: created.Add(time.Millisecond), Finished: created.Add(2 * time.Millisecond), Reason: "boom"},
		{stepDef: defs[1], State: StepCancelled, Finished: created.Add(3 * time.Millisecond), Reason: "its dependency a failed"},
		{stepDef: defs[2], State: StepBlocked},
	}
	return r, newSpec(defs)
}

func decoded(t *testing.T, b []byte, sp *spec) *record {
	t.Helper()
	r, ss, err := decodeState(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.withSpec(sp, ss); err != nil {
		t.Fatal(err)
	}
	return r
}

func sameRecord(t *testing.T, got, want *record) {
	t.Helper()
	g, w := *got, *want
	g.Steps, w.Steps, g.graph, w.graph = nil, nil, graph{}, graph{}
	if !g.Created.Equal(w.Created) || !g.Finished.Equal(w.Finished) {
		t.Fatalf("times %v, %v; want %v, %v", g.Created, g.Finished, w.Created, w.Finished)
	}
	g.Created, w.Created, g.Finished, w.Finished = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("record %+v; want %+v", g, w)
	}
	for i, st := range got.Steps {
		ws := want.Steps[i]
		if st.Name != ws.Name || st.State != ws.State || st.HasJob != ws.HasJob || st.Reason != ws.Reason ||
			!st.Enqueued.Equal(ws.Enqueued) || !st.Finished.Equal(ws.Finished) {
			t.Fatalf("step %d: %+v; want %+v", i, st, ws)
		}
	}
}

// Every field of a state survives its binary header.
func TestStateRoundTrip(t *testing.T) {
	r, sp := headerRecord()
	b, err := r.encode()
	if err != nil {
		t.Fatal(err)
	}
	if b[0] != headerMagic {
		t.Fatalf("a state starts with %#x; want the binary header's %#x", b[0], headerMagic)
	}
	sameRecord(t, decoded(t, b, sp), r)
}

// A state written with the JSON header, before the binary one, still
// reads as it was written.
func TestStateWithTheJSONHeaderStillReads(t *testing.T) {
	r, sp := headerRecord()
	b, err := r.encode()
	if err != nil {
		t.Fatal(err)
	}
	_, ss, err := decodeState(b)
	if err != nil {
		t.Fatal(err)
	}
	h, err := json.Marshal(ss)
	if err != nil {
		t.Fatal(err)
	}
	old := binary.AppendUvarint([]byte{stateMagic}, uint64(len(h)))
	old = append(append(old, h...), ss.Steps...)
	sameRecord(t, decoded(t, old, sp), r)
}

// A state cut short anywhere, or of a magic no build wrote, is refused as
// malformed, never read as another state.
func TestTruncatedStateIsMalformed(t *testing.T) {
	r, sp := headerRecord()
	b, err := r.encode()
	if err != nil {
		t.Fatal(err)
	}
	for n := range len(b) {
		got, ss, err := decodeState(b[:n])
		if err == nil {
			err = got.withSpec(sp, ss)
		}
		if !errors.Is(err, job.ErrMalformedPayload) {
			t.Fatalf("the state cut to %d of %d bytes: %v; want ErrMalformedPayload", n, len(b), err)
		}
	}
	if _, _, err := decodeState([]byte{0x7F, 1, 2}); !errors.Is(err, job.ErrMalformedPayload) {
		t.Fatalf("an unknown magic: %v; want ErrMalformedPayload", err)
	}
}
