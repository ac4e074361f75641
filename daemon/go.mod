module github.com/conveyorhq/conveyor/daemon

go 1.26.0

require github.com/conveyorhq/conveyor v0.0.0

require (
	github.com/avast/retry-go/v4 v4.7.0 // indirect
	github.com/google/uuid v1.6.0 // indirect
	github.com/robfig/cron/v3 v3.0.1 // indirect
	github.com/sony/gobreaker/v2 v2.4.0 // indirect
)

// Developed in one repository: this module builds against the library
// beside it (go.work does the same for the whole workspace).
replace github.com/conveyorhq/conveyor => ..

replace github.com/conveyorhq/conveyor/backends/open => ../backends/open

replace github.com/conveyorhq/conveyor/backends/pgbackend => ../backends/pgbackend

replace github.com/conveyorhq/conveyor/backends/redisbackend => ../backends/redisbackend

replace github.com/conveyorhq/conveyor/backends/amqpbackend => ../backends/amqpbackend
