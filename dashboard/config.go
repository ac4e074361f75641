package dashboard

import (
	"log/slog"
	"time"

	"github.com/conveyorhq/conveyor/backends"
)

// Config configures the dashboard. Zero values mean the stated default.
type Config struct {
	// Backend is what the dashboard shows and steers. Required. Routes
	// that need a capability it lacks answer 501 Not Implemented.
	Backend backends.Backend
	// BasicAuth, when set, is the one user and password every route but
	// /healthz and /readyz requires.
	BasicAuth *BasicAuth
	// BearerToken, when set, is accepted as "Authorization: Bearer <token>"
	// on every route but /healthz and /readyz (as well as BasicAuth, if
	// both are set).
	BearerToken string
	// SessionFor is how long a sign-in on the login page lasts (a cookie
	// session; API clients send the header on every request instead).
	// Default 12h.
	SessionFor time.Duration
	// ReadOnly refuses every state-changing route with 403 Forbidden.
	ReadOnly bool
	// MetricsTTL is how old the backend readings behind /metrics may be, so
	// that scrapes cost the backend one read per TTL. Default 5s.
	MetricsTTL time.Duration
	// HistoryEvery is how often the dashboard's Sampler reads the queues
	// and workers into the current minute of the history that
	// /api/history serves, kept in the backend's KVStore. Default 10s.
	HistoryEvery time.Duration
	// ReadyTimeout bounds the backend round trip of /readyz. Default 2s.
	ReadyTimeout time.Duration
	// Logger receives failed requests' backend errors. Default
	// slog.Default().
	Logger *slog.Logger
}

// BasicAuth is a user and password for HTTP basic authentication.
type BasicAuth struct {
	User, Password string
}

func (c *Config) defaults() {
	if c.MetricsTTL <= 0 {
		c.MetricsTTL = 5 * time.Second
	}
	if c.HistoryEvery <= 0 {
		c.HistoryEvery = 10 * time.Second
	}
	if c.SessionFor <= 0 {
		c.SessionFor = 12 * time.Hour
	}
	if c.ReadyTimeout <= 0 {
		c.ReadyTimeout = 2 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}
