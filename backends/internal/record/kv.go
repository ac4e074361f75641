package record

import "github.com/conveyorhq/conveyor/backends"

// KVSlots is the answer of a GetKVMany being filled from rows in no
// particular order: one KV per key, in the keys' order, absent until a
// row for its key is put.
type KVSlots struct {
	KVs []backends.KV
	at  map[string]int
}

// NewKVSlots returns the slots of keys, each with its key and Version 0.
func NewKVSlots(keys []string) KVSlots {
	s := KVSlots{KVs: make([]backends.KV, len(keys)), at: make(map[string]int, len(keys))}
	for i, k := range keys {
		s.KVs[i].Key = k
		s.at[k] = i
	}
	return s
}

// Put fills kv's key's slot.
func (s KVSlots) Put(kv backends.KV) { s.KVs[s.at[kv.Key]] = kv }
