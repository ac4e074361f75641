package httpapi

import (
	"log/slog"
	"time"

	"github.com/conveyorhq/conveyor/queue"
)

// Config configures the API. Zero values mean the stated default.
type Config struct {
	// Client enqueues and reads jobs. Required.
	Client *queue.Client
	// Tasks are the tasks the API enqueues, by name; a name not among
	// them is refused with 400. Required (at least one).
	Tasks []queue.Definition
	// BearerToken, when set, is accepted as "Authorization: Bearer
	// <token>" on every route.
	BearerToken string
	// BasicAuth, when set, is a user and password accepted on every route
	// (as well as BearerToken, if both are set).
	BasicAuth *BasicAuth
	// FullWait is how long an enqueue into a full queue whose policy is
	// queue.Block waits for room before answering 429. A queue.Reject
	// queue answers at once. Default 2s.
	FullWait time.Duration
	// MaxWait bounds the timeout a client may ask of /wait. Default 60s.
	MaxWait time.Duration
	// MaxBody bounds a request body. Default 1 MiB.
	MaxBody int64
	// Logger receives backend errors behind 5xx answers. Default
	// slog.Default().
	Logger *slog.Logger
}

// BasicAuth is a user and password for HTTP basic authentication.
type BasicAuth struct {
	User, Password string
}

func (c *Config) defaults() {
	if c.FullWait <= 0 {
		c.FullWait = 2 * time.Second
	}
	if c.MaxWait <= 0 {
		c.MaxWait = 60 * time.Second
	}
	if c.MaxBody <= 0 {
		c.MaxBody = 1 << 20
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}
