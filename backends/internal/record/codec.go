package record

import (
	"encoding/json"

	"github.com/conveyorhq/conveyor/job"
)

// Headers is the stored form of a job's headers: a JSON object, or nil
// (SQL NULL, an absent field) when there are none, so that the common
// headerless job costs nothing to store.
func Headers(h map[string]string) []byte {
	if len(h) == 0 {
		return nil
	}
	b, _ := json.Marshal(h) // a map[string]string always marshals
	return b
}

// DecodeHeaders reads what Headers stored. Empty and JSON null are no
// headers. The error is json's; the caller names the job and wraps
// job.ErrMalformedPayload.
func DecodeHeaders(b []byte) (map[string]string, error) {
	if len(b) == 0 || string(b) == "null" {
		return nil, nil
	}
	var h map[string]string
	if err := json.Unmarshal(b, &h); err != nil {
		return nil, err
	}
	return h, nil
}

// AttemptError is one attempt error as a JSON object, the element of a
// stored errors array.
func AttemptError(e job.AttemptError) string {
	b, _ := json.Marshal(e) // strings, an int and a time: always marshals
	return string(b)
}

// DecodeAttemptErrors reads a stored JSON array of attempt errors. Empty
// and JSON null are none. The error is json's, as for DecodeHeaders.
func DecodeAttemptErrors(b []byte) ([]job.AttemptError, error) {
	if len(b) == 0 || string(b) == "null" {
		return nil, nil
	}
	var errs []job.AttemptError
	if err := json.Unmarshal(b, &errs); err != nil {
		return nil, err
	}
	return errs, nil
}

// NonNil is b, or an empty slice for nil: payload and value columns are
// NOT NULL, and a job enqueued without arguments must read back as it was.
func NonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
