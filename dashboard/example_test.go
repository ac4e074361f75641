package dashboard_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"

	"github.com/conveyorhq/conveyor/backends/sqlitebackend"
	"github.com/conveyorhq/conveyor/dashboard"
	"github.com/conveyorhq/conveyor/queue"
)

// An app mounts the dashboard under a prefix of its own server.
func ExampleNew() {
	dir, _ := os.MkdirTemp("", "dashboard-example-")
	defer os.RemoveAll(dir)
	b, _ := sqlitebackend.Open(context.Background(), sqlitebackend.Config{Path: filepath.Join(dir, "app.db")})
	defer b.Close()
	_, _ = sendMail.Enqueue(context.Background(), queue.NewClient(b, queue.Config{}), mailArgs{To: "ada@example.com"}, nil)

	dash, _ := dashboard.New(dashboard.Config{Backend: b, ReadOnly: true})
	mux := http.NewServeMux()
	mux.Handle("/conveyor/", http.StripPrefix("/conveyor", dash))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	res, err := http.Get(srv.URL + "/conveyor/api/queues")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	fmt.Print(res.Status, " ", string(body))
	// Output: 200 OK [{"queue":"mail","paused":false,"depth":1,"counts":{"pending":1}}]
}
