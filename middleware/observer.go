package middleware

import (
	"context"
	"log/slog"
	"time"

	"github.com/entragate/entragate/claims"
)

// Observer receives what the guard does, for metrics, traces or logs of
// one's own (the middleware/entraotel module turns it into
// OpenTelemetry instruments). Each field is optional; a nil one costs nothing. Each is
// called from one place: Decision once per token decision, Load once per
// load of a metadata document, Admission once per call of
// TenantAdmission.Check. They run on the request's goroutine (Decision)
// or a loader's (Load, Admission), so they must be quick and must not
// block; they may be called concurrently.
//
// What they receive never holds a token, and names no user unless
// IncludeClaims asks for the claims.
type Observer struct {
	// Decision is called once for each token decision: for RequireAuth,
	// when the request's fate is known (after the route guards, so that a
	// request refused by a guard is one refused decision, not an accepted
	// one), for Validate, Authorize and IDTokenVerifier.Verify when they
	// return. ctx is the request's. A handler that panics after its
	// token was accepted was an accepted decision: the guard's part ended
	// well.
	Decision func(ctx context.Context, d Decision)

	// Load is called after each attempt to load a metadata document and
	// the key set it names.
	Load func(LoadEvent)

	// Admission is called after each call of a TenantAdmission.Check (not
	// for answers from its cache or from AllowedTenantIDs). ctx carries
	// the values of the request that started the call.
	Admission func(ctx context.Context, e AdmissionEvent)

	// IncludeClaims puts the token's claims in Decision.Claims.
	IncludeClaims bool
}

// Outcome is what a decision was.
type Outcome uint8

// Outcomes of a token decision.
const (
	// Accepted: the token is valid and passed every rule.
	Accepted Outcome = iota + 1
	// Refused: the request or token was refused (400, 401, 403).
	Refused
	// Unavailable: the token could not be checked now (503): keys or
	// admission unavailable, or the guard closed.
	Unavailable
)

func (o Outcome) String() string {
	switch o {
	case Accepted:
		return "accepted"
	case Refused:
		return "refused"
	case Unavailable:
		return "unavailable"
	}
	return "unknown"
}

// Decision describes one token decision.
type Decision struct {
	Outcome Outcome
	// Reason is one of the Err* sentinels when the token was refused or
	// could not be checked, nil when accepted; ReasonName gives a short
	// name for it. Status is the HTTP status of the answer (200 when
	// accepted).
	Reason error
	Status int
	// Token is "access" or "id".
	Token string
	// Authority names the authority that issued the token (as
	// Authority.String does), "" when the token was refused before its
	// issuer was known.
	Authority string
	// TenantID is the token's tenant once its signature verified, ""
	// before (a forged token names any tenant it likes, and must not mint
	// metric labels). It is a tenant, never a user, but a multi-tenant API
	// sees as many as there are tenants in the world.
	TenantID string
	// Cached is true when the token was answered from the cache of
	// verified tokens.
	Cached bool
	// Start is when the decision began; Duration the time it took, the
	// route guards included.
	Start    time.Time
	Duration time.Duration
	// Claims are the token's claims, with Observer.IncludeClaims only: the
	// observer's own copy. They are verified only when TenantID is set.
	Claims *claims.Claims
}

// LoadEvent describes one attempt to load a metadata document and the key
// set it names.
type LoadEvent struct {
	// Authority names the authority; Version ("1.0" or "2.0") and Policy
	// (B2C) which of its documents; MetadataURL the document itself.
	Authority, Version, Policy, MetadataURL string
	// KeyIssuersOnly is set for a v2.0 document read only for the issuers
	// its key set names (see SourceStats).
	KeyIssuersOnly bool
	// Err is nil when the load succeeded.
	Err error
	// Keys is the number of signing keys loaded, when it succeeded.
	Keys int
	// Start is when the load began, Duration how long it took (two HTTP
	// requests).
	Start    time.Time
	Duration time.Duration
}

// AdmissionEvent describes one call of a TenantAdmission.Check.
type AdmissionEvent struct {
	// Authority names the multi-tenant authority.
	Authority string
	// TenantID is the tenant asked about.
	TenantID string
	// Admitted is Check's answer; Err its error (or why no answer came:
	// the deadline, too many calls running).
	Admitted bool
	Err      error
	// Start is when the call began, Duration how long it took (at most
	// TenantAdmission.CheckTimeout: a call still running then is answered
	// with an error, and goes on unobserved).
	Start    time.Time
	Duration time.Duration
}

// decision is a token decision under way: what report needs to describe
// it once it is made.
type decision struct {
	token  string // "access" or "id"
	start  time.Time
	cached bool
	// verified: the token's signature and issuer were checked, so its
	// claims are the issuer's, not a caller's invention.
	verified bool
	src      *source
	claims   *claims.Claims
}

// reportDecision calls obs.Decision, if set, for d ended with e (nil:
// accepted). It is the one place decisions are reported.
func reportDecision(ctx context.Context, obs *Observer, d *decision, e *Error, end time.Time) {
	if obs.Decision == nil {
		return
	}
	out := Decision{Outcome: Accepted, Status: 200, Token: d.token, Cached: d.cached, Start: d.start, Duration: end.Sub(d.start)}
	if e != nil {
		out.Outcome, out.Reason, out.Status = Refused, e.Reason, e.Status
		if e.Status == 503 {
			out.Outcome = Unavailable
		}
	}
	if d.src != nil {
		out.Authority = d.src.auth.name
		if d.verified && d.claims != nil {
			out.TenantID = tenantOf(d.src.state.Load(), d.claims)
		}
	}
	if obs.IncludeClaims && d.claims != nil {
		out.Claims = d.claims.Clone() // the observer's own
	}
	obs.Decision(ctx, out)
}

// observeSafely makes an Observer call on one of the guard's own
// goroutines (a loader's, a lookup's): a panic in it is logged and the
// event dropped, never a crash of the process or a load left unfinished.
func observeSafely(logger *slog.Logger, event string, call func()) {
	defer func() {
		if p := recover(); p != nil {
			logger.Error("entragate: an Observer's "+event+" function panicked; the event is dropped", slog.Any("panic", p))
		}
	}()
	call()
}
