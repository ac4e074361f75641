module github.com/conveyorhq/conveyor/interop/celery

go 1.26.0

require (
	github.com/conveyorhq/conveyor v0.0.0
	github.com/google/uuid v1.6.0
	github.com/rabbitmq/amqp091-go v1.16.0
	github.com/redis/go-redis/v9 v9.23.0
)

require (
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	go.uber.org/atomic v1.12.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
)

replace github.com/conveyorhq/conveyor => ../..
