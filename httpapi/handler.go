package httpapi

import (
	"crypto/subtle"
	_ "embed"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/conveyorhq/conveyor/queue"
)

//go:embed openapi.json
var openAPI []byte

type api struct {
	cfg   Config
	tasks map[string]queue.Definition
}

// New returns the API's handler. Mount it at the root of a server or under
// a prefix with http.StripPrefix.
func New(cfg Config) (http.Handler, error) {
	if cfg.Client == nil {
		return nil, errors.New("httpapi: Config.Client is required")
	}
	if len(cfg.Tasks) == 0 {
		return nil, errors.New("httpapi: Config.Tasks is empty: the API enqueues only tasks it knows")
	}
	cfg.defaults()
	a := &api{cfg: cfg, tasks: map[string]queue.Definition{}}
	for _, t := range cfg.Tasks {
		a.tasks[t.Name()] = t
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/jobs", a.enqueueOne)
	mux.HandleFunc("POST /v1/jobs/batch", a.enqueueBatch)
	mux.HandleFunc("GET /v1/jobs/{id}", a.get)
	mux.HandleFunc("GET /v1/jobs/{id}/wait", a.wait)
	mux.HandleFunc("POST /v1/jobs/{id}/cancel", a.cancel)
	mux.HandleFunc("GET /v1/openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(openAPI)
	})
	// Everything else, in the one error shape (the mux's own 404 and 405
	// are plain text).
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Errorf("no route %s %s", r.Method, r.URL.Path))
	})
	return a.authenticate(mux), nil
}

func (a *api) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/v1/openapi.json": // the document is public, as a client generator needs it
		case a.cfg.BearerToken == "" && a.cfg.BasicAuth == nil:
			if !fromLoopback(r) {
				writeError(w, http.StatusForbidden, errors.New("no credentials are configured, so only loopback is served: set a bearer token or basic auth"))
				return
			}
		case !a.authorized(r):
			if a.cfg.BasicAuth != nil {
				w.Header().Set("WWW-Authenticate", `Basic realm="conveyor", charset="UTF-8"`)
			}
			writeError(w, http.StatusUnauthorized, errors.New("credentials required"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (a *api) authorized(r *http.Request) bool {
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && a.cfg.BearerToken != "" {
		return subtle.ConstantTimeCompare([]byte(tok), []byte(a.cfg.BearerToken)) == 1
	}
	if u, p, ok := r.BasicAuth(); ok && a.cfg.BasicAuth != nil {
		// Both compared, in constant time, so timing tells nothing.
		uOK := subtle.ConstantTimeCompare([]byte(u), []byte(a.cfg.BasicAuth.User))
		pOK := subtle.ConstantTimeCompare([]byte(p), []byte(a.cfg.BasicAuth.Password))
		return uOK&pOK == 1
	}
	return false
}

// fromLoopback reports whether the request came over a loopback address.
// It looks at the connection, never at forwarding headers a client sets.
func fromLoopback(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
