package middleware

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Limits of the tenant admission cache. Anyone can create a tenant and get
// tokens for a multi-tenant API, so the number of tenants seen is bounded
// by us, not by the world.
const (
	maxAdmissionEntries = 10000
	admissionErrorTTL   = time.Second
	// admissionCallTimeout bounds one call of TenantAdmission.Check made on
	// behalf of requests that share it.
	admissionCallTimeout = 10 * time.Second
)

// errAdmissionUnavailable wraps a failing TenantAdmission.Check.
var errAdmissionUnavailable = errors.New("the tenant admission check failed")

// admitter applies a multi-tenant authority's TenantAdmission.
type admitter struct {
	kind     authorityKind
	tenant   string // Organizations or Common
	allowed  map[string]struct{}
	check    func(context.Context, string) (bool, error)
	ttl      time.Duration
	any      bool
	personal bool
	now      func() time.Time
	closing  context.Context

	mu      sync.Mutex
	answers map[string]*admission
}

// admission is one answer of Check, or the call producing it.
type admission struct {
	done    chan struct{}
	ok      bool
	err     error
	expires time.Time
}

func newAdmitter(ctx context.Context, a Authority, now func() time.Time) *admitter {
	t := a.admission
	ad := &admitter{
		kind: a.kind, tenant: a.tenant, check: t.Check, ttl: t.CheckCacheTTL,
		any: t.AllowAnyTenant, personal: t.AllowPersonalAccounts, now: now, closing: ctx,
		allowed: make(map[string]struct{}, len(t.AllowedTenantIDs)),
		answers: map[string]*admission{},
	}
	if ad.ttl == 0 {
		ad.ttl = DefaultTenantCheckCacheTTL
	}
	for _, id := range t.AllowedTenantIDs {
		ad.allowed[strings.ToLower(id)] = struct{}{}
	}
	return ad
}

// personalAccountRule refuses personal Microsoft accounts unless admitted.
// It needs no signature: it is a rule of the configuration, not a lookup.
func (ad *admitter) personalAccountRule(tid string) *Error {
	if tid == PersonalAccountsTenantID && !(ad.personal && ad.tenant == Common) {
		return newError(ErrTenantNotAllowed, "personal Microsoft accounts are not accepted by this API", nil)
	}
	return nil
}

// admit decides whether tenant tid may call the API, and until when that
// answer may be relied on (the zero time: for as long as the configuration
// holds). It runs only for tokens whose signature was verified.
func (ad *admitter) admit(ctx context.Context, tid string) (until time.Time, e *Error) {
	tid = strings.ToLower(tid)
	if e := ad.personalAccountRule(tid); e != nil {
		return time.Time{}, e
	}
	if ad.any || (tid == PersonalAccountsTenantID && ad.personal) {
		return time.Time{}, nil
	}
	if _, ok := ad.allowed[tid]; ok {
		return time.Time{}, nil
	}
	if ad.check == nil {
		return time.Time{}, notAdmitted()
	}
	ans := ad.answer(tid)
	select {
	case <-ans.done:
	case <-ctx.Done():
		return time.Time{}, admissionUnavailable(ctx.Err())
	}
	switch {
	case ans.err != nil:
		return time.Time{}, admissionUnavailable(ans.err)
	case !ans.ok:
		return time.Time{}, notAdmitted()
	}
	return ans.expires, nil
}

// answer returns the cached or running call for tid, starting one if
// needed. Concurrent requests for one tenant share one call.
func (ad *admitter) answer(tid string) *admission {
	now := ad.now()
	ad.mu.Lock()
	defer ad.mu.Unlock()
	if ans, ok := ad.answers[tid]; ok {
		select {
		case <-ans.done:
			if now.Before(ans.expires) {
				return ans
			}
		default:
			return ans // still running
		}
	}
	if len(ad.answers) >= maxAdmissionEntries {
		ad.evictLocked(now)
	}
	ans := &admission{done: make(chan struct{})}
	ad.answers[tid] = ans
	go ad.call(tid, ans)
	return ans
}

func (ad *admitter) call(tid string, ans *admission) {
	defer close(ans.done)
	// The call serves every request waiting for it, so it runs on its own
	// deadline, not on the context of the request that happened to start it.
	ctx, cancel := context.WithTimeout(ad.closing, admissionCallTimeout)
	defer cancel()
	func() {
		defer func() {
			if r := recover(); r != nil {
				ans.err = fmt.Errorf("TenantAdmission.Check panicked: %v", r)
			}
		}()
		ans.ok, ans.err = ad.check(ctx, tid)
	}()
	ttl := ad.ttl
	if ans.err != nil {
		ttl = admissionErrorTTL
	}
	ans.expires = ad.now().Add(ttl)
}

// evictLocked makes room: expired answers first, then any finished one.
func (ad *admitter) evictLocked(now time.Time) {
	for tid, ans := range ad.answers {
		select {
		case <-ans.done:
			if !now.Before(ans.expires) {
				delete(ad.answers, tid)
			}
		default:
		}
	}
	for tid, ans := range ad.answers {
		if len(ad.answers) < maxAdmissionEntries {
			return
		}
		select {
		case <-ans.done:
			delete(ad.answers, tid)
		default:
		}
	}
}

func notAdmitted() *Error {
	return newError(ErrTenantNotAllowed, "the token's tenant is not admitted by this API", nil)
}

func admissionUnavailable(cause error) *Error {
	e := newError(ErrTenantCheckUnavailable, "this API cannot check the token's tenant right now; retry later", fmt.Errorf("%w: %w", errAdmissionUnavailable, cause))
	e.RetryAfterSeconds = 1
	return e
}
