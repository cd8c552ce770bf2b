package app

import (
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-ai/portcullis/internal/config"
	"github.com/portcullis-ai/portcullis/internal/identity"
)

// An auditor reads the console but approves nothing, through the console or the approvals API:
// its scopes are never handed to the approval engine. The agent's own key signs nobody in.
func TestConsoleRolesAtTheComposition(t *testing.T) {
	g := newGatewayWith(t, func(c *config.Config) {
		c.Approvals.Approvers = []config.ApproverConfig{{ID: "audrey", Role: config.RoleAuditor}}
	})
	ks, err := identity.OpenFileKeyStore(filepath.Join(g.dir, ApproverKeysFile))
	if err != nil {
		t.Fatal(err)
	}
	audreyKey, _, err := identity.CreateAPIKey(t.Context(), ks, "audrey", "test", time.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	id := g.held(t, "")
	if status, code, _ := g.approve(t, id, audreyKey); status != http.StatusNotFound || code != "not_found" {
		t.Fatalf("an auditor approved through the API: %d %q", status, code)
	}
	p, err := g.app.approvers.ConsolePrincipal(t.Context(), audreyKey)
	if err != nil || p.Role != "auditor" || len(p.Approver.Scopes) != 0 {
		t.Fatalf("auditor principal: %+v, %v", p, err)
	}
	if _, err := g.app.approvers.ConsolePrincipal(t.Context(), g.key); err == nil {
		t.Fatal("the agent's key signed in to the console")
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.PostForm(g.srv.URL+"/console/login", url.Values{"key": {g.key}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || len(resp.Cookies()) != 0 {
		t.Fatalf("console sign-in with the agent's key: %d", resp.StatusCode)
	}
	resp, err = client.PostForm(g.srv.URL+"/console/login", url.Values{"key": {audreyKey}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || len(resp.Cookies()) != 1 {
		t.Fatalf("console sign-in as the auditor: %d", resp.StatusCode)
	}
}

// console.enabled: false serves no console.
func TestConsoleSwitchedOff(t *testing.T) {
	off := false
	g := newGatewayWith(t, func(c *config.Config) { c.Console.Enabled = &off })
	resp, err := http.Get(g.srv.URL + "/console/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || strings.Contains(resp.Header.Get("Content-Security-Policy"), "script-src") {
		t.Fatalf("console switched off answered %d", resp.StatusCode)
	}
	on := newGateway(t)
	resp, err = http.Get(on.srv.URL + "/console/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("console on by default answered %d", resp.StatusCode)
	}
}
