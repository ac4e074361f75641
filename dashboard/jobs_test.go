package dashboard_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/conveyorhq/conveyor/dashboard"
	"github.com/conveyorhq/conveyor/job"
	"github.com/conveyorhq/conveyor/queue"
)

// The default job list has every state, newest first, and sorts on
// request; a queue page's bulk actions change the ticked jobs and say
// why they left the others; a purge deletes a finished state.
func TestJobListAndBulkActions(t *testing.T) {
	ctx := context.Background()
	b := openSQLite(t)
	c := queue.NewClient(b, queue.Config{})
	var ids []string
	for _, to := range []string{"a@example.com", "b@example.com", "c@example.com", "d@example.com"} {
		h, err := sendMail.Enqueue(ctx, c, mailArgs{To: to}, nil)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, h.ID)
	}
	killNext(t, b, "mail", "bounced") // a
	killNext(t, b, "mail", "bounced") // b
	srv := serve(t, dashboard.Config{Backend: b})

	var page dashboard.JobPage
	call(t, srv, "GET", "/api/jobs", "", http.StatusOK, &page)
	if len(page.Jobs) != 4 || page.Next != "" {
		t.Fatalf("default list = %+v", page)
	}
	for i := 1; i < len(page.Jobs); i++ {
		if page.Jobs[i].CreatedAt.After(page.Jobs[i-1].CreatedAt) {
			t.Fatalf("default list not newest first: %+v", page.Jobs)
		}
	}
	call(t, srv, "GET", "/api/jobs?sort=-state&limit=2", "", http.StatusOK, &page)
	if len(page.Jobs) != 2 || page.Jobs[0].State != job.Pending || page.Jobs[1].State != job.Pending {
		t.Fatalf("sorted by state, descending, 2 = %+v", page.Jobs)
	}
	call(t, srv, "GET", "/api/jobs?sort=colour", "", http.StatusBadRequest, nil)

	var res dashboard.BulkResult
	call(t, srv, "POST", "/api/jobs/bulk", `{"action": "replay", "ids": ["`+ids[0]+`", "`+ids[2]+`"]}`, http.StatusOK, &res)
	if res.Changed != 1 || len(res.Errors) != 1 || res.Errors[ids[2]] == "" {
		t.Fatalf("bulk replay = %+v, want a replayed and c (pending) refused with a reason", res)
	}
	res = dashboard.BulkResult{}
	call(t, srv, "POST", "/api/jobs/bulk", `{"action": "cancel", "ids": ["`+ids[2]+`", "`+ids[3]+`"]}`, http.StatusOK, &res)
	if res.Changed != 2 || len(res.Errors) != 0 {
		t.Fatalf("bulk cancel = %+v", res)
	}
	call(t, srv, "POST", "/api/jobs/bulk", `{"action": "explode", "ids": ["x"]}`, http.StatusBadRequest, nil)
	call(t, srv, "POST", "/api/jobs/bulk", `{"action": "delete", "ids": []}`, http.StatusBadRequest, nil)

	var purged map[string]int
	call(t, srv, "POST", "/api/queues/mail/purge?state=cancelled", "", http.StatusOK, &purged)
	if purged["deleted"] != 2 {
		t.Fatalf("purge = %v, want the 2 cancelled", purged)
	}
	call(t, srv, "POST", "/api/queues/mail/purge?state=pending", "", http.StatusBadRequest, nil)
	var qs []dashboard.QueueView
	call(t, srv, "GET", "/api/queues", "", http.StatusOK, &qs)
	if len(qs) != 1 || qs[0].Counts[job.Pending] != 1 || qs[0].Counts[job.Dead] != 1 || qs[0].Counts[job.Cancelled] != 0 {
		t.Fatalf("after the bulk actions: %+v", qs)
	}
}
