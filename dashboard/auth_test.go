package dashboard_test

import (
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/conveyorhq/conveyor/dashboard"
)

// A browser signs in on the form, under the prefix an app mounted the
// dashboard at, and keeps a cookie session; the API's headers still work;
// signing out ends the session.
func TestLoginSession(t *testing.T) {
	b := openSQLite(t)
	h, err := dashboard.New(dashboard.Config{Backend: b, BasicAuth: &dashboard.BasicAuth{User: "ops", Password: "s3cret"}, BearerToken: "tok"})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/conveyor/", http.StripPrefix("/conveyor", h))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}

	res, err := c.Get(srv.URL + "/conveyor/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.Request.URL.Path != "/conveyor/login" || res.StatusCode != http.StatusOK {
		t.Fatalf("the page without a session ended at %s (%d), want the login form", res.Request.URL, res.StatusCode)
	}
	post := func(form url.Values) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("POST", srv.URL+"/conveyor/login", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}
	if res := post(url.Values{"user": {"ops"}, "password": {"wrong"}}); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a wrong password = %d", res.StatusCode)
	}
	if res := post(url.Values{"token": {"tok"}}); res.StatusCode != http.StatusOK || res.Request.URL.Path != "/conveyor/" {
		t.Fatalf("signing in with the token ended at %s (%d)", res.Request.URL, res.StatusCode)
	}
	u, _ := url.Parse(srv.URL + "/conveyor/")
	if cs := jar.Cookies(u); len(cs) != 1 {
		t.Fatalf("cookies = %v, want the session", cs)
	}
	res, err = c.Get(srv.URL + "/conveyor/api/queues")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("the API with the session = %d", res.StatusCode)
	}
	req, _ := http.NewRequest("POST", srv.URL+"/conveyor/logout", nil)
	if res, err = c.Do(req); err != nil || res.StatusCode != http.StatusNoContent {
		t.Fatalf("logout = %v, %v", res, err)
	}
	res.Body.Close()
	res, _ = c.Get(srv.URL + "/conveyor/api/queues")
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized || res.Header.Get("WWW-Authenticate") == "" {
		t.Fatalf("after logout = %d %v", res.StatusCode, res.Header)
	}
	// A forged session is refused.
	req, _ = http.NewRequest("GET", srv.URL+"/conveyor/api/queues", nil)
	req.AddCookie(&http.Cookie{Name: "conveyor_session", Value: "99999999999.forged"})
	res, _ = http.DefaultClient.Do(req)
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a forged session = %d", res.StatusCode)
	}
}
