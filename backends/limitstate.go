package backends

import (
	"encoding/json"
	"math"
	"time"
)

// The stored form of limits, shared by the KV fallback (which changes it
// by compare-and-set) and by a backend that changes it under a lock of
// its own (PostgreSQL's row lock): a bucket is {"tokens", "at"}, a slot
// set a map from holder to expiry, both JSON. Each transition takes the
// stored value (nil: absent or expired) and says what to write.

// BucketKey is the stored key of bucket key; SlotsKey of slot set key.
func BucketKey(key string) string { return "flow/rate/" + key }

// SlotsKey is the stored key of slot set key.
func SlotsKey(key string) string { return "flow/slots/" + key }

// LimitWrite is what a transition writes: nothing (!Changed), a new value
// expiring at ExpiresAt, or a deletion (Value nil).
type LimitWrite struct {
	Changed   bool
	Value     []byte
	ExpiresAt time.Time
}

type storedBucket struct {
	Tokens float64   `json:"tokens"`
	At     time.Time `json:"at"`
}

// TakeFrom takes p's tokens from the bucket stored as value at now.
func TakeFrom(value []byte, p TakeTokensParams, now time.Time) (LimitWrite, TakeTokensResult) {
	burst, count := p.Sizes()
	b := storedBucket{Tokens: float64(burst), At: now}
	if value != nil {
		// A value this code cannot read is a full bucket: limits are soft
		// state that the next write rebuilds.
		if json.Unmarshal(value, &b) != nil {
			b = storedBucket{Tokens: float64(burst), At: now}
		}
	}
	// A caller whose Now is older than the bucket's time (it read the
	// clock, then waited on a row lock while a later caller wrote) takes
	// at the bucket's time: storing its older Now would move the bucket
	// back, and the next caller would refill the same interval twice.
	if b.At.After(now) {
		now = b.At
	}
	tokens := Refill(b.Tokens, b.At, now, p.Limit, p.Per, burst)
	taken := min(count, int(math.Floor(tokens)))
	res := TakeTokensResult{Taken: taken}
	if taken < count {
		res.NextAt = NextToken(tokens-float64(taken), now, p.Limit, p.Per)
	}
	if taken == 0 {
		return LimitWrite{}, res
	}
	tokens -= float64(taken)
	v, _ := json.Marshal(storedBucket{Tokens: tokens, At: now})
	// Once full again the bucket is the same as an absent one.
	full := now.Add(time.Duration(math.Ceil((float64(burst) - tokens) * float64(p.Per) / float64(p.Limit))))
	return LimitWrite{Changed: true, Value: v, ExpiresAt: full.Add(time.Second)}, res
}

// LiveSlots decodes a slot set stored as value, without the slots expired
// at now.
func LiveSlots(value []byte, now time.Time) map[string]time.Time {
	var slots map[string]time.Time
	_ = json.Unmarshal(value, &slots) // unreadable: empty, rebuilt by the next write
	live := make(map[string]time.Time, len(slots))
	for h, exp := range slots {
		if exp.After(now) {
			live[h] = exp
		}
	}
	return live
}

// AcquireFrom gives p's holders slots of the set stored as value at now.
func AcquireFrom(value []byte, p AcquireSlotsParams, now time.Time) (LimitWrite, []string) {
	slots := LiveSlots(value, now)
	var granted []string
	for _, h := range p.Holders {
		if _, held := slots[h]; held || len(slots) < p.Limit {
			slots[h] = p.ExpiresAt
			granted = append(granted, h)
		}
	}
	if len(granted) == 0 {
		return LimitWrite{}, nil
	}
	return slotsWrite(slots), granted
}

// ReleaseFrom frees p's holders' slots of the set stored as value at now.
func ReleaseFrom(value []byte, p ReleaseSlotsParams, now time.Time) LimitWrite {
	slots := LiveSlots(value, now)
	n := len(slots)
	for _, h := range p.Holders {
		delete(slots, h)
	}
	if len(slots) == n {
		return LimitWrite{}
	}
	return slotsWrite(slots)
}

// slotsWrite stores a slot set until its last slot expires; an empty one
// is deleted.
func slotsWrite(slots map[string]time.Time) LimitWrite {
	if len(slots) == 0 {
		return LimitWrite{Changed: true}
	}
	var last time.Time
	for _, exp := range slots {
		if exp.After(last) {
			last = exp
		}
	}
	v, _ := json.Marshal(slots)
	return LimitWrite{Changed: true, Value: v, ExpiresAt: last}
}
