module github.com/conveyorhq/conveyor/backends/redisbackend

go 1.26.0

require (
	github.com/conveyorhq/conveyor v0.0.0
	github.com/redis/go-redis/v9 v9.23.0
)

require (
	github.com/avast/retry-go/v4 v4.7.0 // indirect
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/google/uuid v1.6.0 // indirect
	github.com/robfig/cron/v3 v3.0.1 // indirect
	github.com/sony/gobreaker/v2 v2.4.0 // indirect
	go.uber.org/atomic v1.12.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
)

// Developed in one repository: this module builds against the library
// beside it (go.work does the same for the whole workspace).
replace github.com/conveyorhq/conveyor => ../..
