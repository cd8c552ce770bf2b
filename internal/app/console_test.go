package app

import (
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-ai/portcullis/internal/approval"
	"github.com/portcullis-ai/portcullis/internal/config"
	"github.com/portcullis-ai/portcullis/internal/console"
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

// A person signed in through console.oidc is who their approvals.approvers entry under the
// console's issuer says, or what console.oidc.roles mapped from their token; an approver-key
// holder of the same name, another issuer's person and an account named like an agent are not.
func TestConsoleOIDCPrincipalAtTheComposition(t *testing.T) {
	const iss = "https://idp.example.com"
	scope := []approval.Scope{{Agents: []string{".*"}, Tools: []string{".*"}}}
	g := newGatewayWith(t, func(c *config.Config) {
		c.Console.OIDC = config.ConsoleOIDCConfig{Issuer: iss, ClientID: "portcullis-console", RedirectURL: "https://gw.example.com/console/oidc/callback",
			RoleClaim: "groups", Roles: map[string][]string{"auditor": {"audit"}}}
		c.Approvals.Approvers = []config.ApproverConfig{{ID: "alice", Issuer: iss, Scopes: scope}, {ID: "bob", Scopes: scope}}
	})
	for _, tc := range []struct {
		id       console.OIDCIdentity
		role     string
		scoped   bool
		refused  bool
		approver string
	}{
		{id: console.OIDCIdentity{Issuer: iss, Subject: "alice"}, role: "approver", scoped: true, approver: iss + "#alice"},
		{id: console.OIDCIdentity{Issuer: iss, Subject: "alice", Role: "auditor"}, role: "auditor"},
		{id: console.OIDCIdentity{Issuer: iss, Subject: "bob"}, refused: true}, // bob signs in with approver keys
		{id: console.OIDCIdentity{Issuer: iss, Subject: "bob", Role: "auditor"}, role: "auditor", approver: iss + "#bob"},
		{id: console.OIDCIdentity{Issuer: "https://other.example.com", Subject: "alice"}, refused: true},
		{id: console.OIDCIdentity{Issuer: iss, Subject: DemoAgent, Role: "admin"}, refused: true},
	} {
		p, err := g.app.approvers.ConsoleOIDCPrincipal(t.Context(), tc.id)
		switch {
		case tc.refused && err == nil:
			t.Errorf("%+v signed in as %+v", tc.id, p)
		case tc.refused:
		case err != nil:
			t.Errorf("%+v: %v", tc.id, err)
		case string(p.Role) != tc.role || (len(p.Approver.Scopes) > 0) != tc.scoped || tc.approver != "" && p.Approver.ID != tc.approver:
			t.Errorf("%+v: %+v", tc.id, p)
		}
	}
}

// The agents page's directory lists the declared agents with their keys' metadata only.
func TestConsoleAgentDirectory(t *testing.T) {
	g := newGateway(t)
	agents, err := consoleAgents{rt: &g.app.rt, keys: g.app.keys, now: time.Now}.ConsoleAgents(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range agents {
		if a.ID != DemoAgent {
			continue
		}
		if len(a.Credentials) == 0 || a.Credentials[0].Kind != "api key" || a.Credentials[0].Status != "active" ||
			strings.Contains(fmt.Sprintf("%+v", a), g.key) {
			t.Fatalf("the demo agent's entry: %+v", a)
		}
		return
	}
	t.Fatalf("the demo agent is not listed: %+v", agents)
}
