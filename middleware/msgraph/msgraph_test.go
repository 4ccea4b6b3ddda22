package msgraph_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/entragate/entragate/middleware"
	"github.com/entragate/entragate/middleware/entratest"
	"github.com/entragate/entragate/middleware/msgraph"
)

// graphTenant is a fake tenant with a user in many groups and an API app
// allowed (or not) to read memberships from Graph.
type graphTenant struct {
	tenant  *entratest.Tenant
	user    entratest.User
	api     *entratest.App
	noRoles *entratest.App
}

func newGraphTenant(t *testing.T, groups int) *graphTenant {
	t.Helper()
	tenant := entratest.NewTenant(t)
	ids := make([]string, groups)
	for i := range ids {
		ids[i] = entratest.NewGUID()
	}
	g := &graphTenant{tenant: tenant}
	g.user = tenant.AddUser(entratest.User{Name: "Many Groups", Groups: ids})
	g.api = tenant.RegisterApp(entratest.App{Name: "API", Secret: "api-secret", GraphRoles: []string{"GroupMember.Read.All"}})
	g.noRoles = tenant.RegisterApp(entratest.App{Name: "API without Graph permissions", Secret: "other-secret"})
	return g
}

// token gets an app-only Graph token for app from the fake's token
// endpoint, as MSAL's client credentials would.
func (g *graphTenant) token(app *entratest.App, secret string) func(context.Context, string) (string, error) {
	return func(ctx context.Context, tenantID string) (string, error) {
		form := url.Values{"grant_type": {"client_credentials"}, "client_id": {app.ClientID}, "client_secret": {secret},
			"scope": {"https://graph.microsoft.com/.default"}}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, g.tenant.Server().URL+"/"+tenantID+"/oauth2/v2.0/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		var body struct {
			AccessToken string `json:"access_token"`
			Error       string `json:"error_description"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.AccessToken == "" {
			return "", errors.New("no token: " + body.Error)
		}
		return body.AccessToken, nil
	}
}

func (g *graphTenant) resolver(t *testing.T, app *entratest.App, secret string) *msgraph.Groups {
	t.Helper()
	r, err := msgraph.New(msgraph.Config{Token: g.token(app, secret), Endpoint: g.tenant.Server().URL})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// A member's every group, page after page; none for a member Graph does
// not know; a clear error without the Graph permission.
func TestMemberGroupsPages(t *testing.T) {
	g := newGraphTenant(t, 2100)
	r := g.resolver(t, g.api, "api-secret")
	srv := g.tenant.Server()
	ids, err := r.MemberGroups(t.Context(), middleware.GroupMember{TenantID: g.tenant.ID, ObjectID: g.user.ObjectID})
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 2100 || ids[0] != g.user.Groups[0] || ids[2099] != g.user.Groups[2099] {
		t.Fatalf("%d groups, want the user's 2100", len(ids))
	}
	if n := srv.Requests(entratest.GraphGroups); n != 3 {
		t.Errorf("%d pages read, want 3 of at most 999", n)
	}

	ids, err = r.MemberGroups(t.Context(), middleware.GroupMember{TenantID: g.tenant.ID, ObjectID: entratest.NewGUID()})
	if err != nil || ids == nil || len(ids) != 0 {
		t.Errorf("unknown member: %v %v, want no groups", ids, err)
	}

	_, err = g.resolver(t, g.noRoles, "other-secret").MemberGroups(t.Context(), middleware.GroupMember{TenantID: g.tenant.ID, ObjectID: g.user.ObjectID})
	var ge *msgraph.Error
	if !errors.As(err, &ge) || ge.Status != http.StatusForbidden || !strings.Contains(err.Error(), "User.Read.All") {
		t.Errorf("without the permission: %v", err)
	}

	srv.SetFault(entratest.GraphGroups, entratest.Unavailable)
	if _, err := r.MemberGroups(t.Context(), middleware.GroupMember{TenantID: g.tenant.ID, ObjectID: g.user.ObjectID}); !errors.As(err, &ge) || ge.Status != 503 {
		t.Errorf("Graph down: %v", err)
	}
}

// The token never leaves the endpoint's origin: a next link or a redirect
// elsewhere is refused before anything is sent there. Graph's Retry-After
// is kept for the 503 the rules answer.
func TestTokensStayOnGraph(t *testing.T) {
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { elsewhere.Add(1) }))
	t.Cleanup(other.Close)
	var mode atomic.Value
	graph := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch mode.Load() {
		case "next link elsewhere":
			_, _ = w.Write([]byte(`{"value":[{"id":"4c9c1b8e-5b7f-4f63-8a84-1b0ea4b5f3d1"}],"@odata.nextLink":"` + other.URL + `/v1.0/next"}`))
		case "redirect elsewhere":
			http.Redirect(w, r, other.URL+r.URL.Path, http.StatusTemporaryRedirect)
		case "throttled":
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write([]byte(`{"error":{"code":"TooManyRequests","message":"Too many requests"}}`))
		}
	}))
	t.Cleanup(graph.Close)
	r, err := msgraph.New(msgraph.Config{Endpoint: graph.URL, Token: func(context.Context, string) (string, error) { return "t", nil }})
	if err != nil {
		t.Fatal(err)
	}
	m := middleware.GroupMember{TenantID: entratest.NewGUID(), ObjectID: entratest.NewGUID()}
	for _, m2 := range []string{"next link elsewhere", "redirect elsewhere"} {
		mode.Store(m2)
		if _, err := r.MemberGroups(t.Context(), m); err == nil {
			t.Errorf("%s: no error", m2)
		}
	}
	if n := elsewhere.Load(); n != 0 {
		t.Errorf("%d requests reached another origin", n)
	}
	mode.Store("throttled")
	_, err = r.MemberGroups(t.Context(), m)
	var ge *msgraph.Error
	if !errors.As(err, &ge) || ge.RetryAfter() != 7*time.Second || ge.Code != "TooManyRequests" {
		t.Errorf("throttled: %v", err)
	}
}

func TestNewRefusesEndpointsThatLeakTokens(t *testing.T) {
	token := func(context.Context, string) (string, error) { return "", nil }
	for _, endpoint := range []string{"http://graph.microsoft.com", "https://graph.microsoft.com/v1.0", "graph.microsoft.com", "https://graph.microsoft.com?x=1"} {
		if _, err := msgraph.New(msgraph.Config{Endpoint: endpoint, Token: token}); err == nil {
			t.Errorf("Endpoint %q accepted", endpoint)
		}
	}
	if _, err := msgraph.New(msgraph.Config{}); err == nil {
		t.Error("no Token function accepted")
	}
}

// The whole path: a user in more groups than a token lists is let in by a
// group only Graph names, refused for a group they are not in, and answered
// 503 while Graph is down; one Graph lookup serves repeated requests.
func TestGroupOverageThroughGraph(t *testing.T) {
	g := newGraphTenant(t, 450)
	srv := g.tenant.Server()
	groups, err := middleware.NewGroups(middleware.GroupsConfig{Resolver: g.resolver(t, g.api, "api-secret")})
	if err != nil {
		t.Fatal(err)
	}
	a, err := middleware.New(t.Context(), g.tenant.Config())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	token := g.tenant.AccessToken(entratest.ForUser(g.user))
	for range 5 {
		if _, err := a.Authorize(t.Context(), token, groups.Any(g.user.Groups[321])); err != nil {
			t.Fatalf("a group of the overage user: %v", err)
		}
	}
	if n := srv.Requests(entratest.GraphGroups); n != 1 {
		t.Errorf("%d Graph requests for five decisions, want 1", n)
	}
	if _, err := a.Authorize(t.Context(), token, groups.Any(entratest.NewGUID())); !errors.Is(err, middleware.ErrInsufficientScope) {
		t.Errorf("a group the user is not in: %v", err)
	}
	other := g.tenant.AddUser(entratest.User{Name: "Also Many", Groups: g.user.Groups})
	srv.SetFault(entratest.GraphGroups, entratest.Unavailable)
	_, err = a.Authorize(t.Context(), g.tenant.AccessToken(entratest.ForUser(other)), groups.Any(g.user.Groups[0]))
	var e *middleware.Error
	if !errors.As(err, &e) || e.Status != http.StatusServiceUnavailable || e.RetryAfterSeconds < 1 {
		t.Errorf("Graph down: %v", err)
	}
}

// A service principal's memberships need Application.Read.All (or
// Directory.Read.All), which the permission for users does not give.
func TestServicePrincipalMemberships(t *testing.T) {
	g := newGraphTenant(t, 0)
	group := entratest.NewGUID()
	sp := g.tenant.RegisterApp(entratest.App{Name: "Daemon", Secret: "d", Groups: []string{group}})
	member := middleware.GroupMember{TenantID: g.tenant.ID, ObjectID: sp.ObjectID, App: true}
	if _, err := g.resolver(t, g.api, "api-secret").MemberGroups(t.Context(), member); err == nil || !strings.Contains(err.Error(), "Application.Read.All") {
		t.Errorf("with GroupMember.Read.All only: %v, want a 403 naming Application.Read.All", err)
	}
	reader := g.tenant.RegisterApp(entratest.App{Name: "Reader", Secret: "r", GraphRoles: []string{"Application.Read.All"}})
	ids, err := g.resolver(t, reader, "r").MemberGroups(t.Context(), member)
	if err != nil || len(ids) != 1 || ids[0] != group {
		t.Errorf("with Application.Read.All: %v %v", ids, err)
	}
}

// A Graph that does not stop paging, pages of more than 4 MiB, a member
// in more than MaxGroups groups, a 404 after the first page: errors, never
// a loop or an unbounded read, never "no groups".
func TestPagingLimits(t *testing.T) {
	var mode atomic.Value
	var requests atomic.Int32
	group := `{"@odata.type":"#microsoft.graph.group","id":"4c9c1b8e-5b7f-4f63-8a84-1b0ea4b5f3d1"}`
	var graph *httptest.Server
	graph = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := requests.Add(1)
		switch mode.Load() {
		case "loop":
			_, _ = w.Write([]byte(`{"value":[],"@odata.nextLink":"` + graph.URL + r.URL.String() + `"}`))
		case "endless":
			_, _ = w.Write([]byte(`{"value":[],"@odata.nextLink":"` + graph.URL + "/v1.0/next/" + strconv.Itoa(int(n)) + `"}`))
		case "huge":
			_, _ = w.Write([]byte(`{"value":[` + strings.Repeat(group+",", 80000) + group + `]}`))
		case "many":
			_, _ = w.Write([]byte(`{"value":[` + strings.Repeat(group+",", 59) + group + `],"@odata.nextLink":"` + graph.URL + "/v1.0/next/" + strconv.Itoa(int(n)) + `"}`))
		case "404 later":
			if n == 1 {
				_, _ = w.Write([]byte(`{"value":[],"@odata.nextLink":"` + graph.URL + `/v1.0/next"}`))
				return
			}
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	t.Cleanup(graph.Close)
	r, err := msgraph.New(msgraph.Config{Endpoint: graph.URL, MaxGroups: 100, Token: func(context.Context, string) (string, error) { return "t", nil }})
	if err != nil {
		t.Fatal(err)
	}
	m := middleware.GroupMember{TenantID: entratest.NewGUID(), ObjectID: entratest.NewGUID()}
	for tc, says := range map[string]string{"loop": "does not end", "endless": "does not end", "huge": "4 MiB", "many": "more than 100 groups", "404 later": "404"} {
		mode.Store(tc)
		requests.Store(0)
		ids, err := r.MemberGroups(t.Context(), m)
		if err == nil || requests.Load() > 20 || !strings.Contains(err.Error(), says) {
			t.Errorf("%s: %d IDs, %v after %d requests, want an error saying %q", tc, len(ids), err, requests.Load(), says)
		}
	}
}
