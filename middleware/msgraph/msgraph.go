// Package msgraph reads group memberships from Microsoft Graph for
// entragate's group rules, when a token cannot list a user's groups
// (group overage: Entra lists at most 200 groups in a JWT).
//
// It uses the standard library only. Tokens come from a function the
// application supplies, typically MSAL for Go's client credentials for
// https://graph.microsoft.com/.default in the user's tenant, with the
// application permissions granted and admin-consented there: User.Read.All
// (or GroupMember.Read.All, Group.Read.All, Directory.Read.All) for
// users, and Application.Read.All (or Directory.Read.All) for service
// principals, the members of app-only tokens (examples/groups shows one).
package msgraph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/entragate/entragate/middleware"
)

// Graph endpoints of the clouds.
const (
	Global          = "https://graph.microsoft.com"
	USGovernment    = "https://graph.microsoft.us"
	USGovernmentDoD = "https://dod-graph.microsoft.us"
	China           = "https://microsoftgraph.chinacloudapi.cn"
	// DefaultMaxGroups bounds the memberships read for one member (about
	// a megabyte while they are read).
	DefaultMaxGroups = 20000
)

// Config configures a Groups resolver.
type Config struct {
	// Token returns an app-only access token for Microsoft Graph in the
	// tenant tenantID: the API's own credentials (client credentials for
	// <Endpoint>/.default), with the application permissions the package
	// documentation names. Required.
	Token func(ctx context.Context, tenantID string) (string, error)
	// Endpoint is Graph's root in the API's cloud. Default Global. It
	// must be https (http only on loopback, for tests).
	Endpoint string
	// HTTPClient makes the requests. Default: a client with a 10 s
	// timeout. It never follows a redirect off Endpoint's host.
	HTTPClient *http.Client
	// MaxGroups bounds the groups read for one member. Default
	// DefaultMaxGroups; beyond it the lookup fails.
	MaxGroups int
}

// Groups is a middleware.GroupResolver over Microsoft Graph: a member's
// transitive memberships (GET /v1.0/users/{id}/transitiveMemberOf, or
// servicePrincipals/{id}), page by page, of which it keeps the groups.
// It asks without an OData cast to microsoft.graph.group, which Graph
// serves only as an advanced query (ConsistencyLevel: eventual, from an
// index that lags behind membership changes).
type Groups struct {
	token     func(context.Context, string) (string, error)
	endpoint  *url.URL
	client    *http.Client
	maxGroups int
}

var _ middleware.GroupResolver = (*Groups)(nil)

// New checks cfg and returns a Groups.
func New(cfg Config) (*Groups, error) {
	if cfg.Token == nil {
		return nil, errors.New("msgraph: Config.Token is required")
	}
	endpoint := cfg.Endpoint
	if endpoint == "" {
		endpoint = Global
	}
	u, err := url.Parse(strings.TrimSuffix(endpoint, "/"))
	if err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || (u.Path != "" && u.Path != "/") {
		return nil, fmt.Errorf("msgraph: Endpoint %q is not a Graph root such as %s", endpoint, Global)
	}
	if u.Scheme != "https" && !(u.Scheme == "http" && isLoopback(u.Hostname())) {
		return nil, fmt.Errorf("msgraph: Endpoint %q must be https: the request carries a token", endpoint)
	}
	u.Path = ""
	g := &Groups{token: cfg.Token, endpoint: u, client: cfg.HTTPClient, maxGroups: cfg.MaxGroups}
	if g.client == nil {
		g.client = &http.Client{Timeout: 10 * time.Second}
	}
	// A copy: the caller's client is not changed.
	c := *g.client
	c.CheckRedirect = func(req *http.Request, _ []*http.Request) error {
		if !g.sameOrigin(req.URL) {
			return fmt.Errorf("msgraph: refusing a redirect to %s", req.URL.Host)
		}
		return nil
	}
	g.client = &c
	if g.maxGroups <= 0 {
		g.maxGroups = DefaultMaxGroups
	}
	return g, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (g *Groups) sameOrigin(u *url.URL) bool {
	return u.Scheme == g.endpoint.Scheme && strings.EqualFold(u.Host, g.endpoint.Host)
}

// Error is a failed Graph request. RetryAfter is Graph's Retry-After, if
// it sent one, which the group rules pass on in their 503.
type Error struct {
	Status     int    // the HTTP status, 0 when the request failed
	Code       string // Graph's error code, e.g. Authorization_RequestDenied
	Message    string // Graph's message, or what failed
	retryAfter time.Duration
}

func (e *Error) Error() string {
	msg := "msgraph: "
	if e.Status != 0 {
		msg += "HTTP " + strconv.Itoa(e.Status) + ": "
	}
	if e.Code != "" {
		msg += e.Code + ": "
	}
	return msg + e.Message
}

// RetryAfter is Graph's Retry-After, zero when it sent none.
func (e *Error) RetryAfter() time.Duration { return e.retryAfter }

// MemberGroups reads the object IDs of every group m is a member of,
// directly or transitively, following Graph's paging. A member Graph does
// not know (deleted since the token was issued) has no groups.
func (g *Groups) MemberGroups(ctx context.Context, m middleware.GroupMember) ([]string, error) {
	token, err := g.token(ctx, m.TenantID)
	if err != nil {
		return nil, fmt.Errorf("msgraph: getting a Graph token for tenant %s: %w", m.TenantID, err)
	}
	collection := "users"
	if m.App {
		collection = "servicePrincipals"
	}
	next := g.endpoint.String() + "/v1.0/" + collection + "/" + url.PathEscape(m.ObjectID) + "/transitiveMemberOf?$select=id&$top=999"
	ids := []string{}
	seen := map[string]bool{}
	// Pages enough for MaxGroups memberships of every kind, and a few more.
	for n := 0; next != ""; n++ {
		if seen[next] || n > g.maxGroups/100+10 {
			return nil, &Error{Message: "Graph's paging does not end (a page link repeats, or there are more pages than MaxGroups memberships fill)"}
		}
		seen[next] = true
		page, err := g.page(ctx, next, token)
		if err != nil {
			var ge *Error
			if errors.As(err, &ge) && ge.Status == http.StatusNotFound && n == 0 {
				return ids, nil // a member deleted since the token was issued
			}
			return nil, err
		}
		for _, v := range page.Value {
			if v.Type == "#microsoft.graph.group" {
				ids = append(ids, v.ID)
			}
		}
		if len(ids) > g.maxGroups {
			return nil, &Error{Message: fmt.Sprintf("the member is in more than %d groups (MaxGroups)", g.maxGroups)}
		}
		next = page.NextLink
	}
	return ids, nil
}

type groupPage struct {
	Value []struct {
		Type string `json:"@odata.type"`
		ID   string `json:"id"`
	} `json:"value"`
	NextLink string `json:"@odata.nextLink"`
}

// maxPageSize bounds a page's body: 999 IDs are about 60 KiB.
const maxPageSize = 4 << 20

// page reads one page. A next link must stay on the endpoint's origin:
// the token is never sent elsewhere.
func (g *Groups) page(ctx context.Context, link, token string) (*groupPage, error) {
	u, err := url.Parse(link)
	if err != nil || !g.sameOrigin(u) {
		return nil, &Error{Message: fmt.Sprintf("refusing a page link off %s", g.endpoint.Host)}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, &Error{Message: err.Error()}
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	resp, err := g.client.Do(req)
	if err != nil {
		return nil, &Error{Message: err.Error()}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxPageSize+1))
	switch {
	case err != nil:
		return nil, &Error{Status: resp.StatusCode, Message: "reading the answer: " + err.Error()}
	case len(body) > maxPageSize:
		return nil, &Error{Status: resp.StatusCode, Message: "the answer exceeds 4 MiB"}
	case resp.StatusCode != http.StatusOK:
		return nil, graphError(resp, body)
	}
	var p groupPage
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, &Error{Status: resp.StatusCode, Message: "the answer is not a Graph collection: " + err.Error()}
	}
	return &p, nil
}

// graphError reads Graph's error body and Retry-After.
func graphError(resp *http.Response, body []byte) *Error {
	var ge struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	_ = json.Unmarshal(body, &ge)
	e := &Error{Status: resp.StatusCode, Code: ge.Error.Code, Message: ge.Error.Message}
	if e.Message == "" {
		e.Message = http.StatusText(resp.StatusCode)
	}
	if s, err := strconv.Atoi(strings.TrimSpace(resp.Header.Get("Retry-After"))); err == nil && s > 0 {
		e.retryAfter = time.Duration(s) * time.Second
	}
	if resp.StatusCode == http.StatusForbidden {
		e.Message += " (does the API's app have the application permissions to read memberships, User.Read.All for users and " +
			"Application.Read.All for service principals, admin-consented in this tenant?)"
	}
	return e
}
