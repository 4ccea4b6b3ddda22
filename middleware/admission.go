package middleware

import (
	"context"
	"errors"
	"fmt"
	"strings"
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

// admitter applies a multi-tenant authority's TenantAdmission.
type admitter struct {
	tenant   string // Organizations or Common
	allowed  map[string]struct{}
	any      bool
	personal bool
	checks   *lookups[bool] // TenantAdmission.Check's answers; nil without Check
}

func newAdmitter(ctx context.Context, a *authority, s *providerSettings) *admitter {
	t := a.admission
	ad := &admitter{
		tenant: a.tenant, any: t.AllowAnyTenant, personal: t.AllowPersonalAccounts,
		allowed: make(map[string]struct{}, len(t.AllowedTenantIDs)),
	}
	for _, id := range t.AllowedTenantIDs {
		ad.allowed[strings.ToLower(id)] = struct{}{}
	}
	if t.Check == nil {
		return ad
	}
	ad.checks = &lookups[bool]{
		what: "TenantAdmission.Check", call: t.Check, ttl: t.CheckCacheTTL, timeout: t.CheckTimeout,
		errTTL:     func(error) time.Duration { return admissionErrorTTL },
		maxEntries: maxAdmissionEntries, maxRunning: maxRunningChecks, now: s.now, closing: ctx, logger: s.logger,
		answers: map[string]*answer[bool]{},
	}
	if ad.checks.ttl == 0 {
		ad.checks.ttl = DefaultTenantCheckCacheTTL
	}
	if ad.checks.timeout == 0 {
		ad.checks.timeout = DefaultTenantCheckTimeout
	}
	if observe := s.observer.Admission; observe != nil {
		name := a.name
		ad.checks.observe = func(parent context.Context, tid string, ok bool, err error, start time.Time, d time.Duration) {
			observe(parent, AdmissionEvent{Authority: name, TenantID: tid, Admitted: ok && err == nil, Err: err, Start: start, Duration: d})
		}
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
	if ad.checks == nil {
		return time.Time{}, notAdmitted()
	}
	ok, until, err := ad.checks.get(ctx, tid)
	switch {
	case err != nil:
		return time.Time{}, admissionUnavailable(err)
	case !ok:
		return time.Time{}, notAdmitted()
	}
	return until, nil
}

func notAdmitted() *Error {
	return newError(ErrTenantNotAllowed, "the token's tenant is not admitted by this API", nil)
}

func admissionUnavailable(cause error) *Error {
	e := newError(ErrTenantCheckUnavailable, "this API cannot check the token's tenant right now; retry later", fmt.Errorf("%w: %w", errAdmissionUnavailable, cause))
	e.RetryAfterSeconds = 1
	return e
}
