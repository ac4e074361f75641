package queue

import (
	"encoding/json"
	"fmt"
)

// Codec turns task arguments and results into bytes and back.
type Codec interface {
	Encode(v any) ([]byte, error)
	Decode(data []byte, v any) error
}

// JSON is the default codec, encoding/json.
type JSON struct{}

// Encode implements Codec.
func (JSON) Encode(v any) ([]byte, error) { return json.Marshal(v) }

// Decode implements Codec. Trailing data after the value is an error, so a
// truncated or concatenated payload is caught rather than half-read.
func (JSON) Decode(data []byte, v any) error {
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("json: %w", err)
	}
	return nil
}

// None is the result type of tasks that return nothing.
type None struct{}
