package console

import (
	"crypto/sha256"
	"log/slog"
	"net/http"
	"strings"
)

// maxCredentialBytes bounds what the sign-in form accepts as a credential.
const maxCredentialBytes = 4096

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	c.loginFail(w, r, http.StatusOK, "")
}

// loginFail renders the sign-in page with status and a message (none: the plain page).
func (c *Console) loginFail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	v := view{Title: "Sign in", Flash: msg}
	if c.oidc != nil {
		v.Data = c.oidc.label()
	}
	c.render(w, r, status, "login", v)
}

// login signs a person in with their approver key. Cross-origin posts were refused before this
// runs (http.CrossOriginProtection): another site cannot sign a browser into its own account.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		c.loginFail(w, r, http.StatusBadRequest, "The form could not be read.")
		return
	}
	cred := strings.TrimSpace(r.PostForm.Get("key"))
	if cred == "" || len(cred) > maxCredentialBytes {
		c.loginFail(w, r, http.StatusUnauthorized, "Enter your approver key.")
		return
	}
	var p Principal
	var g Grant
	var err error
	if c.grants != nil {
		p, g, err = c.grants.ConsoleGrant(r.Context(), cred)
	} else {
		p, err = c.o.Auth.ConsolePrincipal(r.Context(), cred)
	}
	if err != nil {
		c.log.LogAttrs(r.Context(), slog.LevelWarn, "console sign-in refused", slog.Any("error", err))
		// One message for every refusal: an unknown key learns nothing about who is declared.
		c.loginFail(w, r, http.StatusUnauthorized, "That key does not sign anyone in to the console.")
		return
	}
	if !c.signIn(w, r, p, cred, &g, nil) {
		return
	}
	c.log.LogAttrs(r.Context(), slog.LevelInfo, "console sign-in", slog.String("principal", p.Approver.ID), slog.String("role", string(p.Role)))
	http.Redirect(w, r, c.o.Path+"/approvals", http.StatusSeeOther)
}

// logout ends the session whose cookie the request carries. It is not a page: a replica that
// cannot verify the session (another hash key, no OIDC here) must still let its holder sign out
// — the cookie proves whose session it is, and the CSRF token is derived from the cookie alone —
// or the person would believe themselves signed out while the cookie still worked elsewhere.
func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	token, ok := sessionToken(r)
	if !ok {
		c.toLogin(w, r)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		c.fail(w, r, http.StatusBadRequest, "The form could not be read.")
		return
	}
	s := &session{key: sha256.Sum256([]byte(token)), csrf: csrfOf(token)}
	if !s.checkCSRF(r.PostForm.Get("csrf")) {
		c.log.LogAttrs(r.Context(), slog.LevelWarn, "console: sign-out without a valid CSRF token refused", slog.String("path", r.URL.Path))
		c.fail(w, r, http.StatusForbidden, "This form has expired or did not come from the console. Reload the page and try again.")
		return
	}
	if err := c.sessions.drop(r.Context(), s); err != nil {
		// The session still lives in the store: say so, and keep the cookie to try again.
		c.storeFailed(w, r, "drop", err)
		return
	}
	http.SetCookie(w, cookie(c.o.Path, "", r.TLS != nil, -1))
	http.Redirect(w, r, c.o.Path+"/login", http.StatusSeeOther)
}
