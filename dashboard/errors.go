package dashboard

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
)

// jsonErrors makes every error the handler answers {"error": "..."}, but
// the login form's (a page for a browser): the dashboard's own handlers
// write that already, and this rewrites the plain text of what they wrap (ServeMux's 404 and 405, CrossOriginProtection's
// 403, the file server's 404), so an API client parses one shape.
func jsonErrors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ew := &errorWriter{ResponseWriter: w}
		next.ServeHTTP(ew, r)
		ew.finish()
	})
}

// errorWriter holds back the body of an error response that is not JSON,
// to send it as JSON once the handler is done.
type errorWriter struct {
	http.ResponseWriter
	status int
	text   *bytes.Buffer // non-nil: an error whose text is being collected
}

func (e *errorWriter) WriteHeader(status int) {
	if e.status != 0 {
		return
	}
	e.status = status
	h := e.Header()
	if ct := h.Get("Content-Type"); status >= 400 && (ct == "" || strings.HasPrefix(ct, "text/plain")) {
		e.text = new(bytes.Buffer)
		return // sent by finish
	}
	e.ResponseWriter.WriteHeader(status)
}

func (e *errorWriter) Write(p []byte) (int, error) {
	if e.status == 0 {
		e.WriteHeader(http.StatusOK)
	}
	if e.text != nil {
		return e.text.Write(p)
	}
	return e.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (e *errorWriter) Unwrap() http.ResponseWriter { return e.ResponseWriter }

func (e *errorWriter) finish() {
	if e.text == nil {
		return
	}
	msg := strings.TrimSpace(e.text.String())
	if msg == "" {
		msg = http.StatusText(e.status)
	}
	h := e.Header()
	h.Del("Content-Length")
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	e.ResponseWriter.WriteHeader(e.status)
	_ = json.NewEncoder(e.ResponseWriter).Encode(map[string]string{"error": msg})
}
