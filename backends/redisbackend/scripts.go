package redisbackend

import (
	"embed"

	"github.com/redis/go-redis/v9"
)

//go:embed lua/*.lua
var luaFiles embed.FS

// scripts are the Lua scripts every state change runs in, each the shared
// prelude plus its own body. go-redis calls them by SHA (EVALSHA) and falls
// back to EVAL, which reloads them, when a restarted Redis forgot them.
// enqueueLean and enqueueOne stand alone, without the prelude (see their
// headers).
type scripts struct {
	enqueue, enqueueLean, enqueueOne, reserve, reserveFair, extend, complete, retry, cancel, admin, read, janitor *redis.Script
}

func loadScripts() *scripts {
	prelude := mustRead("prelude")
	s := func(name string) *redis.Script { return redis.NewScript(prelude + mustRead(name)) }
	return &scripts{
		enqueue: s("enqueue"), enqueueLean: redis.NewScript(mustRead("enqueue_lean")),
		enqueueOne: redis.NewScript(mustRead("enqueue_one")), reserve: s("reserve"), reserveFair: s("reserve_fair"), extend: s("extend"),
		complete: s("complete"), retry: s("retry"), cancel: s("cancel"),
		admin: s("admin"), read: s("read"), janitor: s("janitor"),
	}
}

func (s *scripts) all() []*redis.Script {
	return []*redis.Script{s.enqueue, s.enqueueLean, s.enqueueOne, s.reserve, s.reserveFair, s.extend, s.complete, s.retry, s.cancel, s.admin, s.read, s.janitor}
}

func mustRead(name string) string {
	b, err := luaFiles.ReadFile("lua/" + name + ".lua")
	if err != nil {
		panic(err) // embedded at build time: cannot happen
	}
	return string(b)
}
