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

// IsMember answers a handler as the rules would, for the token's groups
// or the resolved ones; a group first named there makes the kept answers
// be read again, since the cache keeps only the groups named.
func TestIsMember(t *testing.T) {
	g1, g2 := entratest.NewGUID(), entratest.NewGUID()
	res := &countingResolver{groups: map[string][]string{"oid": {g1, g2}}}
	groups, _ := middleware.NewGroups(middleware.GroupsConfig{Resolver: res})
	rule := groups.Any(g1)
	overage := &claims.Claims{TenantID: "tid", ObjectID: "oid", Scopes: []string{"s"}, GroupOverage: true}
	if err := rule.Check(context.Background(), overage); err != nil {
		t.Fatal(err)
	}
	if ok, err := groups.IsMember(context.Background(), overage, strings.ToUpper(g1)); !ok || err != nil {
		t.Errorf("a named group: %v %v", ok, err)
	}
	if res.calls.Load() != 1 {
		t.Errorf("%d resolver calls, want 1", res.calls.Load())
	}
	if ok, err := groups.IsMember(context.Background(), overage, g2); !ok || err != nil || res.calls.Load() != 2 {
		t.Errorf("a group named afterwards: %v %v after %d calls, want true after a second call", ok, err, res.calls.Load())
	}
	if ok, _ := groups.IsMember(context.Background(), &claims.Claims{Groups: []string{g1}}, g1); !ok {
		t.Error("the token's own groups")
	}
	if _, err := groups.IsMember(context.Background(), overage, "Admins"); err == nil {
		t.Error("a group name accepted")
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

// Directory roles and authentication contexts mean something in one tenant
// only: on a multi-tenant API another tenant's Global Administrator, or an
// authentication context of its own making, passes nothing unless the rule
// is pinned to the tenants that count; on a single-tenant API they work
// as they are.
func TestTenantRelativeRulesOnMultiTenantAPIs(t *testing.T) {
	const globalAdmin = "62e90394-69f5-4237-9190-012177145e10"
	srv := entratest.NewServer()
	t.Cleanup(srv.Close)
	home := srv.NewTenant()
	attacker := srv.NewTenant(entratest.WithClientID(home.ClientID))
	multi := newAuth(t, home, func(c *middleware.Config) {
		c.Authorities = []middleware.Authority{middleware.EntraMultiTenant(middleware.Organizations,
			middleware.TenantAdmission{AllowAnyTenant: true}).WithHost(srv.URL)}
	})
	single := newAuth(t, home)
	homeAdmin := home.AccessToken(entratest.Claim("wids", []string{globalAdmin}), entratest.AuthContexts("c1"))
	attackerAdmin := attacker.AccessToken(entratest.Claim("wids", []string{globalAdmin}), entratest.AuthContexts("c1"))
	tests := []struct {
		name  string
		a     *middleware.Authenticator
		rule  middleware.Rule
		token string
		ok    bool
	}{
		{"multi-tenant, unpinned role, the home admin", multi, middleware.AnyDirectoryRole(globalAdmin), homeAdmin, false},
		{"multi-tenant, unpinned role, another tenant's admin", multi, middleware.AnyDirectoryRole(globalAdmin), attackerAdmin, false},
		{"multi-tenant, pinned role, the home admin", multi, middleware.InTenants([]string{home.ID}, middleware.AnyDirectoryRole(globalAdmin)), homeAdmin, true},
		{"multi-tenant, pinned role, another tenant's admin", multi, middleware.InTenants([]string{home.ID}, middleware.AnyDirectoryRole(globalAdmin)), attackerAdmin, false},
		{"multi-tenant, unpinned context", multi, middleware.AuthContext("c1"), attackerAdmin, false},
		{"multi-tenant, pinned context", multi, middleware.InTenants([]string{home.ID}, middleware.AllAuthContexts("c1")), homeAdmin, true},
		{"multi-tenant, pinned context, another tenant", multi, middleware.InTenants([]string{home.ID}, middleware.AuthContext("c1")), attackerAdmin, false},
		{"single tenant, unpinned role", single, middleware.AllDirectoryRoles(globalAdmin), homeAdmin, true},
		{"single tenant, unpinned context", single, middleware.AuthContext("c1"), homeAdmin, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.a.Authorize(context.Background(), tc.token, tc.rule)
			if tc.ok != (err == nil) || !tc.ok && !errors.Is(err, middleware.ErrInsufficientScope) {
				t.Errorf("%v, want ok %v", err, tc.ok)
			}
			// The HTTP guard answers alike.
			srv := stepUpServer(t, tc.a, tc.rule)
			if r := get(t, srv.URL, "Bearer "+tc.token); tc.ok != (r.status == 200) {
				t.Errorf("through RequireAuth: %d", r.status)
			}
		})
	}
}

// blockingResolver holds the lookups of one tenant until released.
type blockingResolver struct {
	slowTenant string
	release    chan struct{}
	running    atomic.Int32
}

func (r *blockingResolver) MemberGroups(ctx context.Context, m middleware.GroupMember) ([]string, error) {
	if m.TenantID == r.slowTenant {
		r.running.Add(1)
		defer r.running.Add(-1)
		select {
		case <-r.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return []string{}, nil
}

// One tenant whose lookups are slow holds at most 8 of the 64 calls: its
// next user gets 503 at once, another tenant's users are still looked up.
// Overage tokens without tid or oid are refused without a lookup, and IDs
// differing in case are one user.
func TestGroupLookupsAreFairAndKeyed(t *testing.T) {
	slow, fast := entratest.NewGUID(), entratest.NewGUID()
	res := &blockingResolver{slowTenant: slow, release: make(chan struct{})}
	defer close(res.release)
	groups, _ := middleware.NewGroups(middleware.GroupsConfig{Resolver: res, LookupTimeout: 5 * time.Second})
	rule := groups.Any(entratest.NewGUID())
	user := func(tid string) *claims.Claims {
		return &claims.Claims{TenantID: tid, ObjectID: entratest.NewGUID(), Scopes: []string{"s"}, GroupOverage: true}
	}
	for range 8 {
		go func() { _ = rule.Check(context.Background(), user(slow)) }()
	}
	eventuallyTrue(t, "8 lookups of the slow tenant running", func() bool { return res.running.Load() == 8 })
	start := time.Now()
	if err := rule.Check(context.Background(), user(slow)); !errors.Is(err, middleware.ErrAuthorizationUnavailable) || time.Since(start) > time.Second {
		t.Errorf("the slow tenant's 9th user: %v after %v, want 503 at once", err, time.Since(start))
	}
	if err := rule.Check(context.Background(), user(fast)); !errors.Is(err, middleware.ErrInsufficientScope) {
		t.Errorf("another tenant's user: %v, want a lookup (and 403: not a member)", err)
	}

	counting := &countingResolver{groups: map[string][]string{}}
	g2, _ := middleware.NewGroups(middleware.GroupsConfig{Resolver: counting})
	r2 := g2.Any(entratest.NewGUID())
	tid, oid := entratest.NewGUID(), entratest.NewGUID()
	for _, c := range []*claims.Claims{
		{TenantID: tid, ObjectID: oid, Scopes: []string{"s"}, GroupOverage: true},
		{TenantID: strings.ToUpper(tid), ObjectID: strings.ToUpper(oid), Scopes: []string{"s"}, GroupOverage: true},
	} {
		_ = r2.Check(context.Background(), c)
	}
	if n := counting.calls.Load(); n != 1 {
		t.Errorf("one user in two cases: %d lookups, want 1", n)
	}
	for _, c := range []*claims.Claims{
		{ObjectID: oid, Scopes: []string{"s"}, GroupOverage: true},
		{TenantID: tid, Scopes: []string{"s"}, GroupOverage: true},
	} {
		if err := r2.Check(context.Background(), c); !errors.Is(err, middleware.ErrInsufficientScope) {
			t.Errorf("overage without tid or oid: %v", err)
		}
	}
	if n := counting.calls.Load(); n != 1 {
		t.Errorf("overage tokens without tid or oid were looked up: %d calls", n)
	}
}

func eventuallyTrue(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5 s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
