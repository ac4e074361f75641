package dashboard

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// sessionCookie carries a browser's session: its expiry and an HMAC of it
// under a key derived from the configured credentials. So every process
// with the same credentials accepts it, a restart keeps it, and changing
// the password or token ends every session.
const sessionCookie = "conveyor_session"

func (a *api) sessionKey() []byte {
	h := sha256.New()
	h.Write([]byte("conveyor dashboard session\x00" + a.cfg.BearerToken + "\x00"))
	if a.cfg.BasicAuth != nil {
		h.Write([]byte(a.cfg.BasicAuth.User + "\x00" + a.cfg.BasicAuth.Password))
	}
	return h.Sum(nil)
}

func (a *api) sign(payload string) string {
	m := hmac.New(sha256.New, a.sessionKey())
	m.Write([]byte(payload))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// newSession returns a cookie value valid until exp.
func (a *api) newSession(exp time.Time) string {
	p := strconv.FormatInt(exp.Unix(), 10)
	return p + "." + a.sign(p)
}

func (a *api) validSession(v string, now time.Time) bool {
	p, mac, ok := strings.Cut(v, ".")
	if !ok || !hmac.Equal([]byte(mac), []byte(a.sign(p))) {
		return false
	}
	exp, err := strconv.ParseInt(p, 10, 64)
	return err == nil && now.Unix() < exp
}

// authenticate asks for the configured credentials, if any: a session
// cookie from the login form, or an Authorization header (API clients).
// A browser opening the page without them is sent to the login form.
func (a *api) authenticate(next http.Handler) http.Handler {
	if !a.authRequired() {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.authorized(r) {
			next.ServeHTTP(w, r)
			return
		}
		if r.Method == http.MethodGet && r.URL.Path == "/" {
			seeOther(w, "login")
			return
		}
		// The page's own requests get no challenge, which would make the
		// browser pop its dialog over the login form the page goes to.
		if a.cfg.BasicAuth != nil && r.Header.Get("X-Conveyor-UI") == "" {
			w.Header().Set("WWW-Authenticate", `Basic realm="conveyor", charset="UTF-8"`)
		}
		writeError(w, http.StatusUnauthorized, errors.New("credentials required"))
	})
}

func (a *api) authRequired() bool { return a.cfg.BasicAuth != nil || a.cfg.BearerToken != "" }

func (a *api) authorized(r *http.Request) bool {
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && a.cfg.BearerToken != "" {
		return a.tokenOK(tok)
	}
	if u, p, ok := r.BasicAuth(); ok && a.cfg.BasicAuth != nil {
		return a.passwordOK(u, p)
	}
	if c, err := r.Cookie(sessionCookie); err == nil {
		return a.validSession(c.Value, time.Now())
	}
	return false
}

func (a *api) tokenOK(tok string) bool {
	return a.cfg.BearerToken != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(a.cfg.BearerToken)) == 1
}

func (a *api) passwordOK(u, p string) bool {
	if a.cfg.BasicAuth == nil {
		return false
	}
	// Both compared, in constant time, so timing tells nothing.
	uok := subtle.ConstantTimeCompare([]byte(u), []byte(a.cfg.BasicAuth.User))
	pok := subtle.ConstantTimeCompare([]byte(p), []byte(a.cfg.BasicAuth.Password))
	return uok&pok == 1
}

var loginTmpl = template.Must(template.ParseFS(ui, "ui/login.html"))

// loginPage serves the form for the configured ways in.
func (a *api) loginPage(w http.ResponseWriter, r *http.Request) {
	if !a.authRequired() {
		seeOther(w, "./")
		return
	}
	a.renderLogin(w, http.StatusOK, r.URL.Query().Has("out"), "")
}

func (a *api) renderLogin(w http.ResponseWriter, status int, signedOut bool, failed string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = loginTmpl.Execute(w, map[string]any{
		"Password": a.cfg.BasicAuth != nil, "Token": a.cfg.BearerToken != "", "Failed": failed, "SignedOut": signedOut,
	})
}

// login checks the form's user and password, or token, and starts a
// session for Config.SessionFor.
func (a *api) login(w http.ResponseWriter, r *http.Request) {
	if !a.authRequired() {
		seeOther(w, "./")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	ok := false
	if tok := r.PostFormValue("token"); tok != "" {
		ok = a.tokenOK(tok)
	} else {
		ok = a.passwordOK(r.PostFormValue("user"), r.PostFormValue("password"))
	}
	if !ok {
		a.cfg.Logger.Warn("dashboard: failed sign-in", "remote", r.RemoteAddr)
		a.renderLogin(w, http.StatusUnauthorized, false, "Those credentials are not right.")
		return
	}
	exp := time.Now().Add(a.cfg.SessionFor)
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: a.newSession(exp), Path: mountPath(r), Expires: exp,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	seeOther(w, "./")
}

func (a *api) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: mountPath(r), MaxAge: -1,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	w.WriteHeader(http.StatusNoContent)
}

// mountPath is the path the handler is mounted at, "/" or a prefix an app
// stripped (http.StripPrefix): the request's original path less the one
// the handler sees. The session cookie is scoped to it.
func mountPath(r *http.Request) string {
	orig := r.RequestURI
	if i := strings.IndexAny(orig, "?#"); i >= 0 {
		orig = orig[:i]
	}
	if prefix, ok := strings.CutSuffix(orig, r.URL.Path); ok && strings.HasPrefix(prefix, "/") {
		return prefix + "/"
	}
	return "/"
}

// seeOther redirects to a URL relative to the request's, as the browser
// resolves it: http.Redirect would resolve it against the path the
// handler sees, which lacks the prefix an app mounted it under.
func seeOther(w http.ResponseWriter, rel string) {
	w.Header().Set("Location", rel)
	w.WriteHeader(http.StatusSeeOther)
}

// session answers GET /api/session: whether signing in is needed (the
// page offers to sign out) and whether actions are refused.
func (a *api) session(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]bool{"auth": a.authRequired(), "read_only": a.cfg.ReadOnly})
}
