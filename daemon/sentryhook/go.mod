module github.com/conveyorhq/conveyor/daemon/sentryhook

go 1.26.0

require (
	github.com/conveyorhq/conveyor v0.0.0
	github.com/conveyorhq/conveyor/daemon v0.0.0-00010101000000-000000000000
	github.com/getsentry/sentry-go v0.46.2
)

require (
	github.com/BurntSushi/toml v1.6.0 // indirect
	github.com/avast/retry-go/v4 v4.7.0 // indirect
	github.com/beorn7/perks v1.0.1 // indirect
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/conveyorhq/conveyor/backends/amqpbackend v0.0.0-00010101000000-000000000000 // indirect
	github.com/conveyorhq/conveyor/backends/open v0.0.0-00010101000000-000000000000 // indirect
	github.com/conveyorhq/conveyor/backends/pgbackend v0.0.0-00010101000000-000000000000 // indirect
	github.com/conveyorhq/conveyor/backends/redisbackend v0.0.0-00010101000000-000000000000 // indirect
	github.com/dustin/go-humanize v1.1.0 // indirect
	github.com/google/uuid v1.6.0 // indirect
	github.com/jackc/pgpassfile v1.0.0 // indirect
	github.com/jackc/pgservicefile v0.0.0-20240606120523-5a60cdf6a761 // indirect
	github.com/jackc/pgx/v5 v5.12.0 // indirect
	github.com/jackc/puddle/v2 v2.2.3 // indirect
	github.com/mattn/go-isatty v0.0.24 // indirect
	github.com/munnerz/goautoneg v0.0.0-20191010083416-a7dc8b61c822 // indirect
	github.com/ncruces/go-strftime v1.1.0 // indirect
	github.com/prometheus/client_golang v1.25.0 // indirect
	github.com/prometheus/client_model v0.6.3 // indirect
	github.com/prometheus/common v0.72.0 // indirect
	github.com/prometheus/procfs v0.22.0 // indirect
	github.com/rabbitmq/amqp091-go v1.16.0 // indirect
	github.com/redis/go-redis/v9 v9.23.0 // indirect
	github.com/remyoudompheng/bigfft v0.0.0-20230129092748-24d4a6f8daec // indirect
	github.com/robfig/cron/v3 v3.0.1 // indirect
	github.com/sony/gobreaker/v2 v2.4.0 // indirect
	go.uber.org/atomic v1.12.0 // indirect
	golang.org/x/sync v0.24.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
	golang.org/x/text v0.43.0 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
	modernc.org/libc v1.80.1 // indirect
	modernc.org/mathutil v1.7.1 // indirect
	modernc.org/memory v1.12.1 // indirect
	modernc.org/sqlite v1.62.0 // indirect
)

// Developed in one repository: this module builds against the library
// beside it (go.work does the same for the whole workspace).
replace github.com/conveyorhq/conveyor => ../..

replace github.com/conveyorhq/conveyor/daemon => ..

replace github.com/conveyorhq/conveyor/backends/open => ../../backends/open

replace github.com/conveyorhq/conveyor/backends/pgbackend => ../../backends/pgbackend

replace github.com/conveyorhq/conveyor/backends/redisbackend => ../../backends/redisbackend

replace github.com/conveyorhq/conveyor/backends/amqpbackend => ../../backends/amqpbackend
