package middleware

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/entragate/entragate/claims"
)

// AnyDirectoryRole passes a token whose user holds at least one of the
// Entra directory roles ids (the wids claim), named by role template ID,
// e.g. "62e90394-69f5-4237-9190-012177145e10" for Global Administrator.
// Entra puts wids in a token only when the API's registration asks for
// group claims that include directory roles (groupMembershipClaims
// "DirectoryRole" or "All"); a role activated through Privileged Identity
// Management appears only in tokens issued after its activation. IDs are
// GUIDs, compared case-insensitively; a name panics. Role template IDs are
// the same in every tenant: on a multi-tenant API, wrap the rule in
// InTenants, or it refuses every token.
func AnyDirectoryRole(ids ...string) Rule {
	ids = mustGUIDs("AnyDirectoryRole", "directory role template ID", ids)
	return memberRule("any directory role of "+strings.Join(ids, " "), ids, false, directoryRoles,
		"the caller does not hold a directory role this operation requires")
}

// AllDirectoryRoles passes a token whose user holds every one of the
// directory roles ids.
func AllDirectoryRoles(ids ...string) Rule {
	ids = mustGUIDs("AllDirectoryRoles", "directory role template ID", ids)
	return memberRule("all directory roles of "+strings.Join(ids, " "), ids, true, directoryRoles,
		"the caller does not hold every directory role this operation requires")
}

// directoryRoles are the token's wids, which mean something only in the
// API's own tenant (see InTenants).
func directoryRoles(ctx context.Context, c *claims.Claims) ([]string, *Error) {
	if e := tenantRelative(ctx); e != nil {
		return nil, e
	}
	return c.DirectoryRoles, nil
}

// A GroupResolver reads a user's group memberships from the directory,
// for tokens that could not list them (group overage). msgraph.Groups is
// one over Microsoft Graph.
type GroupResolver interface {
	// MemberGroups returns the object IDs of every group m is a member
	// of, directly or through other groups (transitively), as the groups
	// claim would have listed them. An error means the answer is not
	// known: the request gets 503, never 403.
	MemberGroups(ctx context.Context, m GroupMember) ([]string, error)
}

// GroupMember names whose groups a GroupResolver reads: a user, or for an
// app-only token the client's service principal, in the token's tenant.
type GroupMember struct {
	TenantID, ObjectID string
	// App is true for an app-only token: ObjectID is a service principal.
	App bool
}

// Defaults of GroupsConfig.
const (
	DefaultGroupCacheTTL      = 5 * time.Minute
	DefaultGroupCacheSize     = 10000
	DefaultGroupLookupTimeout = 10 * time.Second
)

// GroupsConfig configures group rules. The zero value checks only the
// groups a token lists, and refuses (403) a token whose user is in too
// many groups for it to list them.
type GroupsConfig struct {
	// Resolver reads the groups of a user in group overage: Entra lists at
	// most 200 groups in a JWT, and for a user in more it omits groups and
	// says so (claims.Claims.GroupOverage). It is called only for tokens
	// whose signature verified, at most once per user at a time, and its
	// answers are kept for CacheTTL. Nil: such users are refused with 403.
	Resolver GroupResolver
	// CacheTTL is how long a user's resolved groups are relied on.
	// Default DefaultGroupCacheTTL. A token's own groups are as old as
	// the token, up to its lifetime; keep CacheTTL short of that.
	CacheTTL time.Duration
	// CacheSize bounds the users whose groups are kept. Default
	// DefaultGroupCacheSize.
	CacheSize int
	// LookupTimeout bounds each Resolver call; a request waits for it at
	// most so long. Default DefaultGroupLookupTimeout.
	LookupTimeout time.Duration
	// Logger receives, at Warn, each failed lookup. Default slog.Default().
	Logger *slog.Logger
}

// Groups checks group membership (the groups claim, object IDs), and
// resolves the groups of users in group overage through its Resolver.
// It is safe for concurrent use; build one per process and share it
// across routes, so its cache serves them all.
type Groups struct {
	resolver GroupResolver
	lookups  *lookups[memberships] // by tenant and object ID; nil without a resolver
	logger   *slog.Logger

	// named are the group IDs the rules (and IsMember) ask about, with a
	// generation that changes when one is added: a user's resolved groups
	// keep only those, so that the cache's size does not depend on how
	// many groups users are in.
	mu    sync.Mutex
	named map[string]struct{}
	gen   uint64
}

// memberships are a user's groups among those named, as of a generation
// of the named set.
type memberships struct {
	ids []string // lower case, sorted
	gen uint64
}

// Limits of the Resolver calls running at once: in all, and for one
// tenant, so that a tenant whose users' lookups are slow (a multi-tenant
// API admits anyone's tenant) cannot hold every call.
const (
	maxRunningGroupLookups          = 64
	maxRunningGroupLookupsPerTenant = 8
)

// NewGroups checks cfg and returns a Groups.
func NewGroups(cfg GroupsConfig) (*Groups, error) {
	switch {
	case cfg.CacheTTL < 0 || cfg.CacheSize < 0 || cfg.LookupTimeout < 0:
		return nil, configError("GroupsConfig: CacheTTL, CacheSize and LookupTimeout cannot be negative")
	case cfg.CacheTTL > 0 && cfg.CacheTTL < time.Second:
		return nil, configError("GroupsConfig: CacheTTL %v is below 1 s; a typo for seconds?", cfg.CacheTTL)
	case cfg.LookupTimeout > 0 && cfg.LookupTimeout < 10*time.Millisecond:
		return nil, configError("GroupsConfig: LookupTimeout %v is below 10 ms; a typo for seconds?", cfg.LookupTimeout)
	}
	g := &Groups{resolver: cfg.Resolver, logger: cfg.Logger, named: map[string]struct{}{}}
	if g.logger == nil {
		g.logger = slog.Default()
	}
	if cfg.Resolver == nil {
		return g, nil
	}
	g.lookups = &lookups[memberships]{
		what: "GroupResolver.MemberGroups", call: g.resolve,
		ttl: orDefault(cfg.CacheTTL, DefaultGroupCacheTTL), timeout: orDefault(cfg.LookupTimeout, DefaultGroupLookupTimeout),
		errTTL: retryDelay, maxEntries: orDefault(cfg.CacheSize, DefaultGroupCacheSize), maxRunning: maxRunningGroupLookups,
		group: tenantOfKey, maxPerGroup: maxRunningGroupLookupsPerTenant,
		now: time.Now, closing: context.Background(), logger: g.logger, answers: map[string]*answer[memberships]{},
	}
	return g, nil
}

// orDefault is v, or def when v is zero.
func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Any passes a token whose user is a member of at least one of the groups
// ids (object IDs, GUIDs; a name panics).
func (g *Groups) Any(ids ...string) Rule {
	ids = mustGUIDs("Groups.Any", "group object ID", ids)
	g.name(ids...)
	return memberRule("any group of "+strings.Join(ids, " "), ids, false, g.of,
		"the caller is not a member of a group this operation requires")
}

// All passes a token whose user is a member of every one of the groups
// ids.
func (g *Groups) All(ids ...string) Rule {
	ids = mustGUIDs("Groups.All", "group object ID", ids)
	g.name(ids...)
	return memberRule("all groups of "+strings.Join(ids, " "), ids, true, g.of,
		"the caller is not a member of every group this operation requires")
}

// IsMember reports whether a verified token's user is a member of the
// group id (an object ID): by the token's groups, or in group overage by
// the Resolver's answer (cached). The error is an *Error: 503 when the
// Resolver fails, 403 in overage without a Resolver. A group first named
// here makes the cached answers of every user be read again once.
func (g *Groups) IsMember(ctx context.Context, c *claims.Claims, id string) (bool, error) {
	id = strings.ToLower(id)
	if !isGUID(id) {
		return false, fmt.Errorf("entragate: Groups.IsMember: %q is not a group object ID (a GUID)", id)
	}
	g.name(id)
	held, e := g.of(ctx, c)
	if e != nil {
		return false, e
	}
	return slices.ContainsFunc(held, func(h string) bool { return strings.EqualFold(h, id) }), nil
}

// name adds ids to the groups the cache keeps.
func (g *Groups) name(ids ...string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, id := range ids {
		if _, ok := g.named[id]; !ok {
			g.named[id] = struct{}{}
			g.gen++
		}
	}
}

func (g *Groups) generation() uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.gen
}

// tenantOfKey is the tenant of a lookup key ("[app:]tid/oid").
func tenantOfKey(key string) string {
	tid, _, _ := strings.Cut(strings.TrimPrefix(key, "app:"), "/")
	return tid
}

// GroupStats counts a Groups' lookups.
type GroupStats struct {
	// Users is the number of users whose groups are kept (or being read).
	Users int
	// Hits counts overage requests answered from the cache or by a lookup
	// another request started; Lookups counts Resolver calls.
	Hits, Lookups int64
}

// Stats reports the lookups made so far.
func (g *Groups) Stats() GroupStats {
	if g.lookups == nil {
		return GroupStats{}
	}
	return GroupStats{Users: g.lookups.size(), Hits: g.lookups.hits.Load(), Lookups: g.lookups.misses.Load()}
}

// of is the user's groups, the cache's own in overage.
func (g *Groups) of(ctx context.Context, c *claims.Claims) ([]string, *Error) {
	if !c.GroupOverage {
		return c.Groups, nil
	}
	if g.lookups == nil {
		return nil, newError(ErrInsufficientScope, "the token lists no groups (the user is in too many for a token) and this API reads none from the directory", nil)
	}
	if c.TenantID == "" || c.ObjectID == "" {
		return nil, newError(ErrInsufficientScope, "the token names no tenant or object ID whose groups could be read", nil)
	}
	key := strings.ToLower(c.TenantID) + "/" + strings.ToLower(c.ObjectID)
	if c.IsAppOnly() {
		key = "app:" + key
	}
	m, _, err := g.lookups.get(ctx, key)
	if err == nil && m.gen != g.generation() {
		// Kept before a group was named: read again.
		g.lookups.forget(key)
		m, _, err = g.lookups.get(ctx, key)
	}
	if err != nil {
		e := newError(ErrAuthorizationUnavailable, "this API cannot read the caller's groups right now; retry later", err)
		e.RetryAfterSeconds = int(retryDelay(err) / time.Second)
		return nil, e
	}
	return m.ids, nil
}

// resolve is the lookups' call: the Resolver, its answer checked,
// normalised (lower case, sorted, no duplicates) and cut to the groups
// named, once for every request that reads it.
func (g *Groups) resolve(ctx context.Context, key string) (memberships, error) {
	gen := g.generation()
	app := false
	if rest, ok := strings.CutPrefix(key, "app:"); ok {
		app, key = true, rest
	}
	tid, oid, _ := strings.Cut(key, "/")
	ids, err := g.resolver.MemberGroups(ctx, GroupMember{TenantID: tid, ObjectID: oid, App: app})
	if err == nil {
		ids, err = normalGroupIDs(ids)
	}
	if err != nil {
		g.logger.WarnContext(ctx, "entragate: reading a user's groups failed; their requests get 503 until it succeeds",
			slog.String("tid", tid), slog.String("oid", oid), slog.String("error", err.Error()))
		return memberships{}, err
	}
	g.mu.Lock()
	kept := slices.DeleteFunc(ids, func(id string) bool { _, named := g.named[id]; return !named })
	g.mu.Unlock()
	return memberships{ids: slices.Clip(kept), gen: gen}, nil
}

// normalGroupIDs checks that ids are object IDs and returns them in lower
// case, sorted, without duplicates.
func normalGroupIDs(ids []string) ([]string, error) {
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if !isGUID(strings.ToLower(id)) {
			return nil, fmt.Errorf("GroupResolver.MemberGroups returned %q, which is not a group object ID", id)
		}
		out = append(out, strings.ToLower(id))
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// retryDelay is how long a failed lookup is remembered and the Retry-After
// of its 503: the resolver's own (Graph's Retry-After), between 1 s and a
// minute, or defaultAuthorizationRetry seconds.
func retryDelay(err error) time.Duration {
	var r interface{ RetryAfter() time.Duration }
	if errors.As(err, &r) {
		return min(max(r.RetryAfter(), time.Second), time.Minute).Truncate(time.Second)
	}
	return defaultAuthorizationRetry * time.Second
}

// memberRule is the rule behind the group and directory-role checks: ids
// (lower case) against the member's list, which member reads.
func memberRule(desc string, ids []string, all bool, member func(context.Context, *claims.Claims) ([]string, *Error), refusal string) Rule {
	return Rule{desc: desc, check: func(ctx context.Context, c *claims.Claims) *Error {
		held, e := member(ctx, c)
		if e != nil {
			return e
		}
		has := func(id string) bool {
			return slices.ContainsFunc(held, func(h string) bool { return strings.EqualFold(h, id) })
		}
		if all && !slices.ContainsFunc(ids, func(id string) bool { return !has(id) }) ||
			!all && slices.ContainsFunc(ids, has) {
			return nil
		}
		return newError(ErrInsufficientScope, refusal, nil)
	}}
}

// mustGUIDs panics unless ids holds at least one GUID, and returns them in
// lower case.
func mustGUIDs(fn, what string, ids []string) []string {
	if len(ids) == 0 {
		panic("entragate: " + fn + " needs at least one " + what)
	}
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = strings.ToLower(id)
		if !isGUID(out[i]) {
			panic("entragate: " + fn + ": " + `"` + id + `" is not a ` + what + " (a GUID): names are not accepted")
		}
	}
	return out
}
