package pgbackend_test

import (
	"context"
	"net/url"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/conveyorhq/conveyor/backends/pgbackend"
	"github.com/conveyorhq/conveyor/internal/faulttest"
	"github.com/conveyorhq/conveyor/internal/testenv"
)

// An enqueue that committed but whose reply was lost (the server went away
// before answering) says that its outcome is unknown and names the job.
func TestLostReplyIsAnUnknownOutcome(t *testing.T) {
	_, schema := newPool(t) // the schema, dropped at the end
	u, err := url.Parse(testenv.PostgresURL(t))
	must(t, err)
	px := faulttest.NewProxy(t, u.Host)
	u.Host = px.Addr()
	u.RawQuery = "sslmode=disable" // the proxy reads the requests
	pool, err := pgxpool.New(context.Background(), u.String())
	must(t, err)
	t.Cleanup(pool.Close)
	b := open(t, pool, pgbackend.Config{Schema: schema, JanitorEvery: -1})
	faulttest.AmbiguousEnqueue(t, b, px, "ambiguous")
}
