package queue

import "encoding/json"

// Codec turns task arguments and results into bytes and back.
type Codec interface {
	Encode(v any) ([]byte, error)
	Decode(data []byte, v any) error
}

// JSON is the default codec, encoding/json.
type JSON struct{}

// Encode implements Codec.
func (JSON) Encode(v any) ([]byte, error) { return json.Marshal(v) }

// Decode implements Codec.
func (JSON) Decode(data []byte, v any) error { return json.Unmarshal(data, v) }

// None is the result type of tasks that return nothing.
type None struct{}
