package middleware_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/entragate/entragate/claims"
	"github.com/entragate/entragate/middleware"
	"github.com/entragate/entragate/middleware/entratest"
)

// countingResolver answers from a map, counting calls, optionally slow or
// failing.
type countingResolver struct {
	mu     sync.Mutex
	groups map[string][]string // by object ID
	calls  atomic.Int32
	delay  time.Duration
	err    error
	seen   []middleware.GroupMember
}

func (r *countingResolver) MemberGroups(ctx context.Context, m middleware.GroupMember) ([]string, error) {
	r.calls.Add(1)
	r.mu.Lock()
	r.seen = append(r.seen, m)
	delay, err, ids := r.delay, r.err, r.groups[m.ObjectID]
	r.mu.Unlock()
	select {
	case <-time.After(delay):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return ids, err
}

func (r *countingResolver) set(delay time.Duration, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.delay, r.err = delay, err
}

type retryAfterError struct{ d time.Duration }

func (e retryAfterError) Error() string             { return "throttled" }
func (e retryAfterError) RetryAfter() time.Duration { return e.d }

// Group rules read the token's groups, and for a user in overage the
// resolver's: once per user for many requests, the answer kept; a
// failure is 503 with the resolver's Retry-After, never 403 or 200; a
// user in none of the groups is 403.
func TestGroupsSurviveOverage(t *testing.T) {
	tenant := entratest.NewTenant(t)
	a := newAuth(t, tenant)
	admins, auditors := entratest.NewGUID(), entratest.NewGUID()
	many := make([]string, 350)
	for i := range many {
		many[i] = entratest.NewGUID()
	}
	many[299] = strings.ToUpper(admins) // a resolver's case does not matter
	res := &countingResolver{groups: map[string][]string{tenant.User.ObjectID: many}}
	groups, err := middleware.NewGroups(middleware.GroupsConfig{Resolver: res})
	if err != nil {
		t.Fatal(err)
	}
	srv := stepUpServer(t, a, groups.Any(admins))

	if r := get(t, srv.URL, "Bearer "+tenant.AccessToken(entratest.Groups(auditors, admins))); r.status != 200 {
		t.Fatalf("groups in the token: %d %v", r.status, r.body)
	}
	if r := get(t, srv.URL, "Bearer "+tenant.AccessToken(entratest.Groups(auditors))); r.status != 403 {
		t.Fatalf("not a member: %d %v", r.status, r.body)
	}
	if res.calls.Load() != 0 {
		t.Fatalf("the resolver was called for tokens listing their groups")
	}

	overage := tenant.AccessToken(entratest.GroupOverage())
	var wg sync.WaitGroup
	statuses := make([]int, 40)
	res.set(50*time.Millisecond, nil)
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = get(t, srv.URL, "Bearer "+overage).status
		}()
	}
	wg.Wait()
	for i, s := range statuses {
		if s != 200 {
			t.Fatalf("overage request %d: %d", i, s)
		}
	}
	if n := res.calls.Load(); n != 1 {
		t.Fatalf("40 concurrent requests of one user made %d resolver calls, want 1", n)
	}
	if m := res.seen[0]; m.TenantID != tenant.ID || m.ObjectID != tenant.User.ObjectID || m.App {
		t.Errorf("resolver asked about %+v", m)
	}
	if st := groups.Stats(); st.Users != 1 || st.Lookups != 1 || st.Hits != 39 {
		t.Errorf("stats %+v", st)
	}

	// Another user in overage, with Graph failing: 503, Retry-After as
	// Graph said, and no call per request while it holds.
	other := entratest.User{ObjectID: entratest.NewGUID(), Name: "Other"}
	res.set(0, retryAfterError{3 * time.Second})
	otherToken := tenant.AccessToken(entratest.ForUser(other), entratest.GroupOverage())
	for range 3 {
		r := get(t, srv.URL, "Bearer "+otherToken)
		if r.status != 503 || r.header.Get("Retry-After") != "3" || r.body["error"] != "temporarily_unavailable" {
			t.Fatalf("resolver failing: %d %v %v", r.status, r.header, r.body)
		}
	}
	if n := res.calls.Load(); n != 2 {
		t.Errorf("a failure remembered for its Retry-After: %d calls, want 2", n)
	}
}

// The resolver's answer holds for CacheTTL; a slow resolver is cut at
// LookupTimeout with 503; an answer that is no list of object IDs is
// refused, as is an overage user when there is no resolver (403: the API
// said it reads no groups).
func TestGroupLookupLimits(t *testing.T) {
	tenant := entratest.NewTenant(t)
	a := newAuth(t, tenant)
	admins := entratest.NewGUID()
	res := &countingResolver{groups: map[string][]string{tenant.User.ObjectID: {admins}}}
	groups, err := middleware.NewGroups(middleware.GroupsConfig{Resolver: res, CacheTTL: time.Second, LookupTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	rule := groups.All(admins)
	overage := tenant.AccessToken(entratest.GroupOverage())

	check := func() error {
		_, err := a.Authorize(context.Background(), overage, rule)
		return err
	}
	if err := check(); err != nil {
		t.Fatal(err)
	}
	if err := check(); err != nil || res.calls.Load() != 1 {
		t.Fatalf("cached: %v, %d calls", err, res.calls.Load())
	}
	time.Sleep(1100 * time.Millisecond)
	res.set(time.Second, nil)
	start := time.Now()
	err = check()
	if !errors.Is(err, middleware.ErrAuthorizationUnavailable) || time.Since(start) > 600*time.Millisecond {
		t.Fatalf("slow resolver after the TTL: %v after %v", err, time.Since(start))
	}

	res.set(0, nil)
	res.mu.Lock()
	res.groups[tenant.User.ObjectID] = []string{"Domain Admins"}
	res.mu.Unlock()
	// A Groups of its own: the timeout above is remembered for 5 s.
	g2, _ := middleware.NewGroups(middleware.GroupsConfig{Resolver: res})
	if _, err := a.Authorize(context.Background(), overage, g2.Any(admins)); !errors.Is(err, middleware.ErrAuthorizationUnavailable) {
		t.Errorf("a resolver answering names: %v, want 503", err)
	}

	none, _ := middleware.NewGroups(middleware.GroupsConfig{})
	_, err = a.Authorize(context.Background(), overage, none.Any(admins))
	var e *middleware.Error
	if !errors.As(err, &e) || e.Status != http.StatusForbidden || !strings.Contains(e.Description, "too many") {
		t.Errorf("overage without a resolver: %v", err)
	}
}

// An app-only token in overage is looked up as a service principal.
func TestGroupsOfAServicePrincipal(t *testing.T) {
	tenant := entratest.NewTenant(t)
	a := newAuth(t, tenant)
	g := entratest.NewGUID()
	res := &countingResolver{groups: map[string][]string{tenant.DaemonObjectID: {g}}}
	groups, _ := middleware.NewGroups(middleware.GroupsConfig{Resolver: res})
	if _, err := a.Authorize(context.Background(), tenant.AppToken(entratest.Roles("Jobs.Run"), entratest.GroupOverage()), groups.Any(g)); err != nil {
		t.Fatal(err)
	}
	if m := res.seen[0]; !m.App || m.ObjectID != tenant.DaemonObjectID {
		t.Errorf("resolver asked about %+v", m)
	}
}

// Groups.Of gives a handler the user's groups, the token's or resolved,
// as its own list; claims tell "too many to list" from "none".
func TestGroupsOf(t *testing.T) {
	g1 := entratest.NewGUID()
	res := &countingResolver{groups: map[string][]string{"oid": {g1}}}
	groups, _ := middleware.NewGroups(middleware.GroupsConfig{Resolver: res})
	ids, err := groups.Of(context.Background(), &claims.Claims{TenantID: "tid", ObjectID: "oid", Scopes: []string{"s"}, GroupOverage: true})
	if err != nil || len(ids) != 1 || ids[0] != g1 {
		t.Fatalf("Of: %v %v", ids, err)
	}
	ids[0] = "changed"
	again, _ := groups.Of(context.Background(), &claims.Claims{TenantID: "tid", ObjectID: "oid", Scopes: []string{"s"}, GroupOverage: true})
	if again[0] != g1 {
		t.Errorf("Of shares its list with the cache")
	}
	ids, err = groups.Of(context.Background(), &claims.Claims{Groups: []string{g1}})
	if err != nil || len(ids) != 1 {
		t.Errorf("token's groups: %v %v", ids, err)
	}
}

// Directory roles (wids) by template ID, any or all; names panic, as do
// group names.
func TestDirectoryRoles(t *testing.T) {
	const globalAdmin, reader = "62e90394-69f5-4237-9190-012177145e10", "88d8e3e3-8f55-4a1e-953a-9b9898b8876b"
	c := &claims.Claims{Scopes: []string{"s"}, DirectoryRoles: []string{globalAdmin}}
	if err := middleware.AnyDirectoryRole(strings.ToUpper(reader), strings.ToUpper(globalAdmin)).Check(context.Background(), c); err != nil {
		t.Errorf("any: %v", err)
	}
	if err := middleware.AllDirectoryRoles(reader, globalAdmin).Check(context.Background(), c); !errors.Is(err, middleware.ErrInsufficientScope) {
		t.Errorf("all, one missing: %v", err)
	}
	groups, _ := middleware.NewGroups(middleware.GroupsConfig{})
	for name, f := range map[string]func(){
		"role name":  func() { middleware.AnyDirectoryRole("Global Administrator") },
		"no roles":   func() { middleware.AllDirectoryRoles() },
		"group name": func() { groups.Any("Admins") },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			f()
		})
	}
	if _, err := middleware.NewGroups(middleware.GroupsConfig{CacheTTL: 300}); err == nil {
		t.Error("CacheTTL of 300 ns accepted")
	}
}
