package job_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/conveyorhq/conveyor/job"
)

func TestStateClasses(t *testing.T) {
	for _, s := range job.States() {
		if s.Finished() == s.Waiting() && s != job.Running {
			t.Errorf("%s is both or neither finished and waiting", s)
		}
		got, err := job.ParseState(string(s))
		if err != nil || got != s {
			t.Errorf("ParseState(%s) = %s, %v", s, got, err)
		}
	}
	if job.Running.Finished() || job.Running.Waiting() {
		t.Error("running is neither finished nor waiting")
	}
	if _, err := job.ParseState("paused"); !errors.Is(err, job.ErrInvalid) {
		t.Errorf("ParseState(paused) = %v", err)
	}
}

func ExampleRecord_LastError() {
	r := job.Record{Errors: []job.AttemptError{{Attempt: 1, Error: "timeout"}, {Attempt: 2, Error: "503"}}}
	fmt.Println(r.Attempts(), r.LastError().Error)
	// Output: 2 503
}
