package middleware

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Limits of the tenant admission cache. Anyone can create a tenant and get
// tokens for a multi-tenant API, so the number of tenants seen is bounded
// by us, not by the world.
const (
	maxAdmissionEntries = 10000
	admissionErrorTTL   = time.Second
	// maxRunningChecks bounds the calls of TenantAdmission.Check running
	// at once, and so those still running past their deadline (a Check
	// that ignores its context), each of which holds a goroutine nothing
	// can stop. Beyond it, tenants not already answered get 503 at once,
	// until calls return.
	maxRunningChecks = 64
)

// errAdmissionUnavailable wraps a failing TenantAdmission.Check.
var errAdmissionUnavailable = errors.New("the tenant admission check failed")

// errTooManyRunningChecks: maxRunningChecks calls are running.
var errTooManyRunningChecks = errors.New("too many TenantAdmission.Check calls are running, some perhaps past their deadline")

// admitter applies a multi-tenant authority's TenantAdmission.
type admitter struct {
	name     string // the authority's
	tenant   string // Organizations or Common
	allowed  map[string]struct{}
	check    func(context.Context, string) (bool, error)
	ttl      time.Duration
	timeout  time.Duration
	any      bool
	personal bool
	now      func() time.Time
	closing  context.Context
	observe  func(context.Context, AdmissionEvent)

	mu      sync.Mutex
	answers map[string]*admission
	running atomic.Int32 // calls of check not returned, deadline or not
}

// admission is one answer of Check, or the call producing it.
type admission struct {
	done    chan struct{}
	ok      bool
	err     error
	expires time.Time
}

func newAdmitter(ctx context.Context, a *authority, s *providerSettings) *admitter {
	t := a.admission
	ad := &admitter{
		name: a.name, tenant: a.tenant, check: t.Check, ttl: t.CheckCacheTTL, timeout: t.CheckTimeout,
		any: t.AllowAnyTenant, personal: t.AllowPersonalAccounts, now: s.now, closing: ctx, observe: s.observer.Admission,
		allowed: make(map[string]struct{}, len(t.AllowedTenantIDs)),
		answers: map[string]*admission{},
	}
	if ad.ttl == 0 {
		ad.ttl = DefaultTenantCheckCacheTTL
	}
	if ad.timeout == 0 {
		ad.timeout = DefaultTenantCheckTimeout
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
	ans := ad.answer(ctx, tid)
	// The call answers by its deadline even if Check does not return.
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
func (ad *admitter) answer(ctx context.Context, tid string) *admission {
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
	go ad.call(ctx, tid, ans)
	return ans
}

// call asks Check about tid and answers by the deadline, whether or not
// Check returns: a Check that ignores its context holds no request past
// it. The call serves every request waiting for it, so it keeps the values
// of the request that started it (a trace, a logger) but not its
// cancellation.
func (ad *admitter) call(parent context.Context, tid string, ans *admission) {
	defer close(ans.done)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), ad.timeout)
	defer cancel()
	stop := context.AfterFunc(ad.closing, cancel)
	defer stop()

	type result struct {
		ok  bool
		err error
	}
	if ad.running.Add(1) > maxRunningChecks {
		ad.running.Add(-1)
		ans.err = errTooManyRunningChecks
	} else {
		results := make(chan result, 1)
		go func() {
			var r result
			defer func() {
				if p := recover(); p != nil {
					r = result{err: fmt.Errorf("TenantAdmission.Check panicked: %v", p)}
				}
				ad.running.Add(-1)
				results <- r
			}()
			r.ok, r.err = ad.check(ctx, tid)
		}()
		start := time.Now()
		select {
		case r := <-results:
			ans.ok, ans.err = r.ok, r.err
		case <-ctx.Done():
			// The call goes on, counted in running, until Check returns.
			ans.err = fmt.Errorf("TenantAdmission.Check did not answer within %v: %w", ad.timeout, ctx.Err())
		}
		if ad.observe != nil {
			ad.observe(parent, AdmissionEvent{Authority: ad.name, TenantID: tid, Admitted: ans.ok && ans.err == nil, Err: ans.err, Start: start, Duration: time.Since(start)})
		}
	}
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
