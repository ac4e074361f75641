package backendtest

import (
	"fmt"
	"slices"
	"sync"
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

	// A key that is not UTF-8 is refused by every method, and not stored.
	bad := k("bad\xff")
	_, err = put(bad, "x", 0, time.Time{}, now)
	expectErr(h.t, err, job.ErrInvalid)
	_, err = kv.GetKV(h.ctx, backends.GetKVParams{Key: bad, Now: now})
	expectErr(h.t, err, job.ErrInvalid)
	expectErr(h.t, kv.DeleteKV(h.ctx, backends.DeleteKVParams{Key: bad}), job.ErrInvalid)
	_, err = kv.ListKV(h.ctx, backends.ListKVParams{Prefix: bad, Now: now})
	expectErr(h.t, err, job.ErrInvalid)
	list, err = kv.ListKV(h.ctx, backends.ListKVParams{Prefix: k("bad"), Now: now})
	must(h.t, err)
	if len(list) != 0 {
		h.t.Fatalf("a refused key was stored: %+v", list)
	}
}

// testKVBatch: many keys in one call read and write as one call each
// would, in order, every put on its own.
func testKVBatch(h *harness) {
	kv, batch := h.b.(backends.KVStore), h.b.(backends.KVBatcher)
	k := func(name string) string { return "btm/" + h.ns + "/" + name }
	now := h.now()
	put := func(key, val string, ifv int64, exp time.Time) int64 {
		v, err := kv.PutKV(h.ctx, backends.PutKVParams{Key: key, Value: []byte(val), IfVersion: ifv, ExpiresAt: exp, Now: now})
		must(h.t, err)
		return v
	}
	va := put(k("a"), "a", 0, time.Time{})
	vb := put(k("b"), "b", 0, time.Time{})
	vc := put(k("c"), "c", 0, time.Time{})
	vgone := put(k("gone"), "old", 0, now.Add(time.Second))
	later := now.Add(time.Minute)

	got, err := batch.GetKVMany(h.ctx, backends.GetKVManyParams{Keys: []string{k("b"), k("none"), k("gone"), k("a")}, Now: later})
	must(h.t, err)
	if len(got) != 4 || got[0].Key != k("b") || string(got[0].Value) != "b" || got[0].Version != vb ||
		got[1].Version != 0 || len(got[1].Value) != 0 || got[2].Version != 0 || got[3].Version != va || string(got[3].Value) != "a" {
		h.t.Fatalf("GetKVMany = %+v", got)
	}

	// One put of each kind: an update at the right version, a stale one,
	// a create, a create of a live key, a create over an expired key.
	puts := []backends.PutKVParams{
		{Key: k("a"), Value: []byte("a2"), IfVersion: va, Now: later},
		{Key: k("b"), Value: []byte("stale"), IfVersion: vb + 1, Now: later},
		{Key: k("new"), Value: []byte("n"), Now: later},
		{Key: k("c"), Value: []byte("again"), Now: later},
		{Key: k("gone"), Value: []byte("back"), ExpiresAt: later.Add(time.Hour), Now: later},
	}
	vs, err := batch.PutKVMany(h.ctx, backends.PutKVManyParams{Puts: puts})
	must(h.t, err)
	if len(vs) != 5 || vs[0] <= va || vs[1] != 0 || vs[2] < 1 || vs[3] != 0 || vs[4] <= vgone {
		h.t.Fatalf("PutKVMany = %v (before: a %d, gone %d)", vs, va, vgone)
	}
	want := map[string]struct {
		val string
		ver int64
	}{"a": {"a2", vs[0]}, "b": {"b", vb}, "new": {"n", vs[2]}, "c": {"c", vc}, "gone": {"back", vs[4]}}
	for name, w := range want {
		g, err := kv.GetKV(h.ctx, backends.GetKVParams{Key: k(name), Now: later})
		must(h.t, err)
		if string(g.Value) != w.val || g.Version != w.ver {
			h.t.Fatalf("after PutKVMany, %s = %q at version %d, want %q at %d", name, g.Value, g.Version, w.val, w.ver)
		}
	}

	// A key twice is refused, and nothing of the batch is written.
	_, err = batch.PutKVMany(h.ctx, backends.PutKVManyParams{Puts: []backends.PutKVParams{
		{Key: k("twice"), Value: []byte("1"), Now: later}, {Key: k("twice"), Value: []byte("2"), Now: later},
	}})
	expectErr(h.t, err, job.ErrInvalid)
	_, err = kv.GetKV(h.ctx, backends.GetKVParams{Key: k("twice"), Now: later})
	expectErr(h.t, err, job.ErrNotFound)

	// A key that is not UTF-8 is refused, also beside a stored key that
	// its bytes would read as once replaced by U+FFFD, and a batch holding
	// one writes nothing.
	put(k("repl\uFFFD"), "other key's", 0, time.Time{})
	_, err = batch.GetKVMany(h.ctx, backends.GetKVManyParams{Keys: []string{k("a"), k("repl\xff")}, Now: later})
	expectErr(h.t, err, job.ErrInvalid)
	_, err = batch.PutKVMany(h.ctx, backends.PutKVManyParams{Puts: []backends.PutKVParams{
		{Key: k("fine"), Value: []byte("1"), Now: later}, {Key: k("bad\xff"), Value: []byte("2"), Now: later},
	}})
	expectErr(h.t, err, job.ErrInvalid)
	_, err = kv.GetKV(h.ctx, backends.GetKVParams{Key: k("fine"), Now: later})
	expectErr(h.t, err, job.ErrNotFound)

	// Empty batches, and one of the size the workflow engine sends.
	if vs, err := batch.PutKVMany(h.ctx, backends.PutKVManyParams{}); err != nil || len(vs) != 0 {
		h.t.Fatalf("empty PutKVMany = %v, %v", vs, err)
	}
	if got, err := batch.GetKVMany(h.ctx, backends.GetKVManyParams{Now: later}); err != nil || len(got) != 0 {
		h.t.Fatalf("empty GetKVMany = %v, %v", got, err)
	}
	const n = 1000
	many := make([]backends.PutKVParams, n)
	keys := make([]string, n)
	for i := range many {
		keys[i] = k(fmt.Sprintf("many/%04d", i))
		many[i] = backends.PutKVParams{Key: keys[i], Value: []byte(keys[i]), Now: later}
	}
	vs, err = batch.PutKVMany(h.ctx, backends.PutKVManyParams{Puts: many})
	must(h.t, err)
	got, err = batch.GetKVMany(h.ctx, backends.GetKVManyParams{Keys: keys, Now: later})
	must(h.t, err)
	for i := range n {
		if vs[i] < 1 || got[i].Key != keys[i] || got[i].Version != vs[i] || string(got[i].Value) != keys[i] {
			h.t.Fatalf("key %d of %d: put version %d, read back %+v", i, n, vs[i], got[i])
		}
	}

	// Two writers update the same keys at once, one in the keys' order
	// and one in reverse (two engines advancing the same workflows): no
	// batch fails (a backend that locks each key as it goes must not
	// deadlock), and every put either lands or reports the lost race.
	shared := keys[:50]
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for w := range 2 {
		wg.Go(func() {
			for range 20 {
				cur, err := batch.GetKVMany(h.ctx, backends.GetKVManyParams{Keys: shared, Now: later})
				if err != nil {
					errs <- err
					return
				}
				puts := make([]backends.PutKVParams, len(cur))
				for i, c := range cur {
					puts[i] = backends.PutKVParams{Key: c.Key, Value: []byte(c.Key), IfVersion: c.Version, Now: later}
				}
				if w == 1 {
					slices.Reverse(puts)
				}
				if _, err := batch.PutKVMany(h.ctx, backends.PutKVManyParams{Puts: puts}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		h.t.Fatalf("concurrent PutKVMany: %v", err)
	}
}
