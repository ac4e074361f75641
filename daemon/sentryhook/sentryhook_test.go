package sentryhook_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/getsentry/sentry-go"

	"github.com/conveyorhq/conveyor/daemon"
	"github.com/conveyorhq/conveyor/daemon/sentryhook"
	"github.com/conveyorhq/conveyor/job"
)

// events is a sentry.Transport that keeps what the SDK would send, so the
// test reads the real events the SDK builds.
type events struct {
	mu  sync.Mutex
	got []*sentry.Event
}

func (e *events) Configure(sentry.ClientOptions)        {}
func (e *events) Flush(time.Duration) bool              { return true }
func (e *events) FlushWithContext(context.Context) bool { return true }
func (e *events) Close()                                {}
func (e *events) SendEvent(ev *sentry.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.got = append(e.got, ev)
}

var errDeclined = errors.New("card declined")

func TestOnErrorReportsTheFailure(t *testing.T) {
	tr := &events{}
	client, err := sentry.NewClient(sentry.ClientOptions{Dsn: "https://public@example.invalid/1", Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	report := sentryhook.OnError(sentry.NewHub(client, sentry.NewScope()))
	rec := &job.Record{ID: "j1", Task: "billing.charge", Queue: "billing"}
	report(context.Background(), daemon.Failure{Job: rec, Attempt: 3, Err: fmt.Errorf("charge c_42: %w", errDeclined), Dead: true})
	report(context.Background(), daemon.Failure{Job: rec, Attempt: 1, Err: errors.New("timeout"), Stack: "goroutine 1 [running]:"})

	if len(tr.got) != 2 {
		t.Fatalf("%d events sent, want 2", len(tr.got))
	}
	dead, retried := tr.got[0], tr.got[1]
	if dead.Level != sentry.LevelError || dead.Tags["conveyor.task"] != "billing.charge" || dead.Tags["conveyor.dead"] != "true" ||
		dead.Tags["conveyor.attempt"] != "3" || len(dead.Exception) == 0 {
		t.Fatalf("dead letter event: level %s tags %v exceptions %d", dead.Level, dead.Tags, len(dead.Exception))
	}
	if last := dead.Exception[len(dead.Exception)-1]; last.Value != "charge c_42: card declined" {
		t.Fatalf("exception value %q", last.Value)
	}
	if retried.Level != sentry.LevelWarning || retried.Contexts["conveyor"]["panic_stack"] != "goroutine 1 [running]:" {
		t.Fatalf("retried event: level %s contexts %v", retried.Level, retried.Contexts)
	}
}
