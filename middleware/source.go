package middleware

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
)

// Key refresh policy, per source (one metadata document and the key set it
// names; an authority has one per token version, or per B2C policy).
// Sources load and fail independently: an outage of one never stops tokens
// that another source can check.
//
//   - Metadata and keys are loaded when the Authenticator starts, then every
//     KeyRefreshInterval (default 1 h). A failed load keeps the last good
//     keys and is retried with backoff from 1 s up to maxRetryBackoff (or
//     KeyRefreshInterval, if shorter).
//   - Whatever asks for it, a source starts at most one load per
//     KeyMissRefreshInterval (at least 1 s): the fetch rate stays bounded
//     whatever the configuration and the traffic.
//   - A token whose key ID is not in the current set first has to pass every
//     claim check, so junk never costs a fetch (those claims are not
//     verified yet: the interval is what bounds forged ones). Then, if no load started in the last KeyMissRefreshInterval
//     (default 5 s), one starts and the request waits for it (all requests
//     arriving meanwhile share it). Otherwise the key set is younger than the
//     interval: the request is refused at once as signed with an unknown key
//     (or, if that last load failed, as unverifiable for now: 503), and one
//     load is scheduled for when the interval has passed.
//     So a flood of random key IDs costs Entra at most one fetch per
//     interval, never holds requests, and a newly published key is accepted
//     at most one interval after it first appears in a token.
//   - At most maxKeyWaiters requests wait at once per source; more get 503
//     with Retry-After: our own limit never calls a token invalid.
//   - While a source has never loaded, a request that needs it waits for a
//     load in progress, or starts one if none started in the last interval;
//     if that fails, or a load failed moments ago, it is answered 503 with
//     Retry-After at once. No token is ever accepted without a verified key.
const (
	maxRetryBackoff = 30 * time.Second
	maxKeyWaiters   = 256
)

// errTooManyWaiters is an internal signal: the waiting room is full.
var errTooManyWaiters = errors.New("too many requests are waiting for the signing keys")

// errKeySetFresh is an internal signal: the last load started less than
// KeyMissRefreshInterval ago, so another is scheduled rather than awaited.
var errKeySetFresh = errors.New("keys were loaded moments ago; the next load is scheduled")

// sourceState is one immutable loaded state of a source.
type sourceState struct {
	// issuers are the accepted issuers: the metadata's, or WithIssuers'.
	issuers []string
	// metadataIssuer is what the metadata document announces.
	metadataIssuer string
	// tenantID is the tenant the issuer names, for authorities whose
	// issuer is a literal URL (single tenants, External ID, B2C).
	tenantID string
	// keys is the key set, served by keyfunc: the one store of the keys.
	keys keyfunc.Keyfunc
	// keyIssuers holds Entra's per-key issuer, by kid, for the keys whose
	// entry names one: jwkset keeps no unknown members.
	keyIssuers map[string]string
	kids       []string
	loadedAt   time.Time
}

// generation is one load attempt that requests can wait for.
type generation struct {
	done chan struct{}
	err  error
}

func newGeneration() *generation { return &generation{done: make(chan struct{})} }

// source loads and refreshes one metadata document and its key set.
type source struct {
	p       *Provider
	s       *providerSettings
	auth    *authority
	spec    sourceSpec
	issuers []string // WithIssuers of this version, replacing the metadata's
	ctx     context.Context

	state   atomic.Pointer[sourceState]
	kick    chan struct{}
	waiters atomic.Int32

	mu          sync.Mutex
	inflight    *generation // the load running now, if any
	next        *generation // the load that starts next
	lastAttempt time.Time
	lastErr     error // outcome of the last finished load
	lastErrAt   time.Time

	fetches  atomic.Int64
	failures atomic.Int64
}

func newSource(p *Provider, a *authority, spec sourceSpec) *source {
	return &source{
		p: p, s: p.s, auth: a, spec: spec, issuers: issuersFor(a.issuers, spec.version), ctx: p.ctx,
		kick: make(chan struct{}, 1),
		next: newGeneration(),
	}
}

// issuersFor returns the WithIssuers that replace the issuer of a metadata
// document announcing version; nil for none given.
func issuersFor(issuers []string, version string) []string {
	var out []string
	for _, iss := range issuers {
		if issuerVersion(iss) == version {
			out = append(out, iss)
		}
	}
	if len(issuers) > 0 && len(out) == 0 {
		// WithIssuers names no issuer of this version: none is accepted.
		return []string{}
	}
	return out
}

func (src *source) String() string {
	name := src.auth.name + " v" + src.spec.version
	if src.spec.policy != "" {
		name = src.auth.name + " policy " + src.spec.policy
	}
	return name
}

// firstLoad is the generation of the first load, to wait for at start-up.
func (src *source) firstLoad() *generation {
	src.mu.Lock()
	defer src.mu.Unlock()
	return src.next
}

func (src *source) run(wg *sync.WaitGroup) {
	defer wg.Done()
	backoff := time.Duration(0)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-src.ctx.Done():
			return
		case <-timer.C:
		case <-src.kick:
		}
		// Keep loads at least one KeyMissRefreshInterval apart, whoever
		// asks: the periodic timer, a retry, or requests.
		src.mu.Lock()
		wait := time.Until(src.lastAttempt.Add(src.s.minLoadInterval))
		src.mu.Unlock()
		if wait > 0 {
			select {
			case <-src.ctx.Done():
				return
			case <-time.After(wait):
			}
		}
		if err := src.refresh(); err != nil {
			src.failures.Add(1)
			// Retry sooner than the regular refresh, never later.
			backoff = min(max(2*backoff, time.Second), maxRetryBackoff, src.s.refreshInterval)
			src.s.logger.Warn("entragate: cannot load Entra metadata or signing keys; keeping the last good keys",
				slog.String("source", src.String()), slog.String("error", oneLine(err.Error())),
				slog.Duration("retry_in", backoff), slog.Bool("have_keys", src.state.Load() != nil))
			timer.Reset(backoff)
			continue
		}
		backoff = 0
		timer.Reset(src.s.refreshInterval)
	}
}

// refresh performs one load, reports it, and wakes the requests waiting
// for it.
func (src *source) refresh() error {
	src.mu.Lock()
	g := src.next
	src.next = newGeneration()
	src.inflight = g
	src.lastAttempt = time.Now()
	src.mu.Unlock()

	start := time.Now()
	st, err := src.load()
	if err == nil {
		src.state.Store(st)
		src.p.documentsChanged()
	}
	end := time.Now()
	if obs := src.s.observer.Load; obs != nil {
		ev := LoadEvent{Authority: src.auth.name, Version: src.spec.version, Policy: src.spec.policy, MetadataURL: src.spec.url,
			KeyIssuersOnly: len(src.spec.routes) == 0, Err: err, Start: start, Duration: end.Sub(start)}
		if st != nil {
			ev.Keys = len(st.kids)
		}
		observeSafely(src.s.logger, "Load", func() { obs(ev) })
	}

	src.mu.Lock()
	src.inflight = nil
	src.lastErr = err
	if err != nil {
		src.lastErrAt = end
	}
	src.mu.Unlock()
	g.err = err
	close(g.done)
	return err
}

// load fetches the metadata document, then the key set it names. Each HTTP
// request has its own FetchTimeout.
func (src *source) load() (*sourceState, error) {
	ctx, cancel := context.WithTimeout(src.ctx, src.s.fetchTimeout)
	src.fetches.Add(1)
	doc, err := fetchMetadata(ctx, src.s.client, src.spec.url)
	cancel()
	if err != nil {
		return nil, err
	}
	st := &sourceState{metadataIssuer: doc.Issuer, issuers: src.issuers, keyIssuers: map[string]string{}}
	if src.issuers == nil { // no WithIssuers: the metadata's own
		st.issuers = []string{doc.Issuer}
	}
	if st.tenantID, err = src.auth.shape.tenantOfIssuer(&src.auth.Authority, doc.Issuer); err != nil {
		return nil, fmt.Errorf("metadata %s: %w", src.spec.url, err)
	}

	ctx, cancel = context.WithTimeout(src.ctx, src.s.fetchTimeout)
	src.fetches.Add(1)
	keys, skipped, err := fetchKeySet(ctx, src.s.client, doc.JWKSURI)
	cancel()
	if err != nil {
		return nil, err
	}
	if len(skipped) > 0 {
		src.s.logger.Info("entragate: skipped unusable keys in key set",
			slog.String("jwks_uri", doc.JWKSURI), slog.Any("skipped", skipped))
	}
	all := make([]jwkset.JWK, 0, len(keys))
	for _, k := range keys {
		kid := k.jwk.Marshal().KID
		if slices.Contains(st.kids, kid) {
			continue
		}
		if k.issuer != "" {
			st.keyIssuers[kid] = k.issuer
		}
		st.kids = append(st.kids, kid)
		all = append(all, k.jwk)
	}
	storage := jwkset.NewMemoryStorage()
	if err := storage.KeyReplaceAll(src.ctx, all); err != nil {
		return nil, err
	}
	if st.keys, err = keyfunc.New(keyfunc.Options{Ctx: src.ctx, Storage: storage}); err != nil {
		return nil, err
	}
	st.loadedAt = time.Now()
	return st, nil
}

// current returns the loaded state, waiting for the first load if none has
// succeeded yet.
func (src *source) current(ctx context.Context) (*sourceState, error) {
	if st := src.state.Load(); st != nil {
		return st, nil
	}
	return src.await(ctx, false)
}

// await waits for a load: one already running, or else a new one. If none
// is running and the last one started less than KeyMissRefreshInterval
// ago, await schedules one and returns errKeySetFresh at once: requests are
// never held for the interval. With fresh (the caller saw a key ID the
// current set lacks) a failed load is an error even if older keys exist.
func (src *source) await(ctx context.Context, fresh bool) (*sourceState, error) {
	if src.ctx.Err() != nil {
		return nil, ErrClosed
	}
	if src.waiters.Add(1) > maxKeyWaiters {
		src.waiters.Add(-1)
		return nil, errTooManyWaiters
	}
	defer src.waiters.Add(-1)

	// A load already running is fresher than the state the caller looked
	// at, so even a caller that needs fresh keys joins it.
	src.mu.Lock()
	g := src.next
	joined := src.inflight != nil
	if joined {
		g = src.inflight
	}
	recent := time.Since(src.lastAttempt) < src.s.minLoadInterval
	lastErr := src.lastErr
	src.mu.Unlock()
	if !joined { // else a load is running: its answer is worth waiting for
		select {
		case src.kick <- struct{}{}:
		default:
		}
		if recent {
			// The last load is younger than the interval: a new one is now
			// scheduled, but this request is answered at once. If that load
			// failed, an unknown key ID may well be genuine: it cannot be
			// checked, which is not the same as being wrong.
			if lastErr != nil {
				return nil, fmt.Errorf("the last key load failed: %w", lastErr)
			}
			if !fresh && src.state.Load() == nil {
				return nil, errors.New("the signing keys have not been loaded yet")
			}
			return nil, errKeySetFresh
		}
	}

	timer := time.NewTimer(src.s.minLoadInterval + 2*src.s.fetchTimeout)
	defer timer.Stop()
	select {
	case <-g.done:
		if st := src.state.Load(); st != nil && (g.err == nil || !fresh) {
			return st, nil
		}
		if g.err == nil {
			return nil, errors.New("the signing keys have not been loaded yet")
		}
		return nil, g.err
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-timer.C:
		return nil, errors.New("timed out waiting for signing keys")
	case <-src.ctx.Done():
		return nil, ErrClosed
	}
}

// retryAfter is the Retry-After for 503 answers: when a new load may start.
func (src *source) retryAfter() int {
	src.mu.Lock()
	wait := time.Until(src.lastAttempt.Add(src.s.minLoadInterval))
	src.mu.Unlock()
	return int(math.Ceil(max(wait, time.Second).Seconds()))
}

// unavailable turns a failed wait into the caller's answer.
func (src *source) unavailable(err error) *Error {
	if errors.Is(err, ErrClosed) {
		return closedError()
	}
	e := newError(ErrKeysUnavailable, "the signing keys of the identity provider cannot be loaded right now; retry later", err)
	e.RetryAfterSeconds = src.retryAfter()
	return e
}

func closedError() *Error {
	e := newError(ErrClosed, "the API is shutting down", nil)
	e.RetryAfterSeconds = 1
	return e
}

// SourceStats describes one metadata document and its key set.
type SourceStats struct {
	// Authority names the authority, Version the token version whose issuer
	// the document announces ("1.0" or "2.0"), Policy the B2C policy.
	Authority, Version, Policy string
	// MetadataURL is the document's URL; Issuer what it announced.
	MetadataURL, Issuer string
	// KeyIssuersOnly is true for a v2.0 document read only because its key
	// set says which tenant each key may sign for, which binds v1.0 tokens
	// too: the API accepts no v2.0 token.
	KeyIssuersOnly bool
	// Ready is true once keys were loaded; they are then kept through
	// outages.
	Ready bool
	// KeyIDs are the key IDs currently trusted.
	KeyIDs []string
	// LastSuccess is when keys were last loaded.
	LastSuccess time.Time
	// LastError is the error of the last load, nil if it succeeded;
	// LastErrorAt when the last load failed.
	LastError   error
	LastErrorAt time.Time
	// Fetches counts HTTP requests made; Failures counts failed loads.
	Fetches, Failures int64
}

func (src *source) stats() SourceStats {
	st := SourceStats{
		Authority: src.auth.name, Version: src.spec.version, Policy: src.spec.policy,
		MetadataURL: src.spec.url, Fetches: src.fetches.Load(), Failures: src.failures.Load(),
		KeyIssuersOnly: len(src.spec.routes) == 0,
	}
	src.mu.Lock()
	st.LastError, st.LastErrorAt = src.lastErr, src.lastErrAt
	src.mu.Unlock()
	if s := src.state.Load(); s != nil {
		st.Ready, st.Issuer, st.LastSuccess = true, s.metadataIssuer, s.loadedAt
		st.KeyIDs = append([]string(nil), s.kids...)
	}
	return st
}
