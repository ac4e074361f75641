package backendtest

import (
	"time"

	"github.com/conveyorhq/conveyor/backends"
	"github.com/conveyorhq/conveyor/job"
)

func testKV(h *harness) {
	kv := h.b.(backends.KVStore)
	k := func(name string) string { return "bt/" + h.ns + "/" + name }
	now := h.now()
	put := func(key, val string, ifv int64, exp time.Time, at time.Time) (int64, error) {
		return kv.PutKV(h.ctx, backends.PutKVParams{Key: key, Value: []byte(val), IfVersion: ifv, ExpiresAt: exp, Now: at})
	}
	v1, err := put(k("a"), "one", 0, time.Time{}, now)
	must(h.t, err)
	if _, err := put(k("a"), "again", 0, time.Time{}, now); err == nil {
		h.t.Fatal("creating an existing key succeeded")
	} else {
		expectErr(h.t, err, job.ErrConflict)
	}
	v2, err := put(k("a"), "two", v1, time.Time{}, now)
	must(h.t, err)
	if v2 <= v1 {
		h.t.Fatalf("version went from %d to %d", v1, v2)
	}
	_, err = put(k("a"), "stale", v1, time.Time{}, now)
	expectErr(h.t, err, job.ErrConflict)
	got, err := kv.GetKV(h.ctx, backends.GetKVParams{Key: k("a"), Now: now})
	must(h.t, err)
	if string(got.Value) != "two" || got.Version != v2 {
		h.t.Fatalf("GetKV = %+v", got)
	}

	// Expiry is on the caller's clock; an expired key is absent, and the
	// next version is still higher than the expired one's.
	lv, err := put(k("lease"), "me", 0, now.Add(time.Minute), now)
	must(h.t, err)
	later := now.Add(2 * time.Minute)
	_, err = kv.GetKV(h.ctx, backends.GetKVParams{Key: k("lease"), Now: later})
	expectErr(h.t, err, job.ErrNotFound)
	_, err = put(k("lease"), "me again", lv, later.Add(time.Minute), later)
	expectErr(h.t, err, job.ErrConflict)
	lv2, err := put(k("lease"), "you", 0, later.Add(time.Minute), later)
	must(h.t, err)
	if lv2 <= lv {
		h.t.Fatalf("a re-created key got version %d after %d", lv2, lv)
	}

	// Listing by prefix, in key order, without expired keys.
	_, err = put(k("list/b"), "b", 0, time.Time{}, now)
	must(h.t, err)
	_, err = put(k("list/a"), "a", 0, time.Time{}, now)
	must(h.t, err)
	_, err = put(k("list/gone"), "x", 0, now.Add(time.Second), now)
	must(h.t, err)
	list, err := kv.ListKV(h.ctx, backends.ListKVParams{Prefix: k("list/"), Now: now.Add(time.Minute)})
	must(h.t, err)
	if len(list) != 2 || list[0].Key != k("list/a") || list[1].Key != k("list/b") || string(list[1].Value) != "b" {
		h.t.Fatalf("ListKV = %+v", list)
	}

	// Delete: guarded by version, then unconditional.
	expectErr(h.t, kv.DeleteKV(h.ctx, backends.DeleteKVParams{Key: k("a"), IfVersion: v1}), job.ErrConflict)
	must(h.t, kv.DeleteKV(h.ctx, backends.DeleteKVParams{Key: k("a"), IfVersion: v2}))
	_, err = kv.GetKV(h.ctx, backends.GetKVParams{Key: k("a"), Now: now})
	expectErr(h.t, err, job.ErrNotFound)
	must(h.t, kv.DeleteKV(h.ctx, backends.DeleteKVParams{Key: k("a")}))
}
