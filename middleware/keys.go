package middleware

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
)

// Key refresh policy.
//
//   - Metadata and keys are loaded when the Authenticator starts, then every
//     KeyRefreshInterval (default 1 h). A failed load keeps the last good keys
//     and is retried with backoff from 1 s up to maxRetryBackoff (or
//     KeyRefreshInterval, if shorter).
//   - A token whose key ID is not in the current set first has to pass every
//     claim check, so only a token that would otherwise be accepted can cost
//     a fetch. Then, if no fetch started in the last KeyMissRefreshInterval
//     (default 5 s), one starts and the request waits for it (all requests
//     arriving meanwhile share it). Otherwise the key set is younger than the
//     interval: the request is refused at once as signed with an unknown key
//     (or, if that last fetch failed, as unverifiable for now: 503), and one
//     fetch is scheduled for when the interval has passed.
//     So a flood of random key IDs costs Entra at most one fetch per
//     interval, never holds requests, and a newly published key is accepted
//     at most one interval after it first appears in a token.
//   - At most maxKeyWaiters requests wait at once; more are refused at once.
//   - While no key set has been loaded, a request with a token waits for a
//     load in progress (at most FetchTimeout), or starts one if none started
//     in the last interval; if that fails, or a load failed moments ago, it
//     is answered 503 with Retry-After at once. No token is ever accepted
//     without a verified key.
const (
	maxRetryBackoff = 30 * time.Second
	maxKeyWaiters   = 256
)

// errTooManyWaiters is an internal signal: the waiting room is full.
var errTooManyWaiters = errors.New("too many requests waiting for a key refresh")

// errKeySetFresh is an internal signal: the last load started less than
// KeyMissRefreshInterval ago, so another is scheduled rather than awaited.
var errKeySetFresh = errors.New("keys were loaded moments ago; the next load is scheduled")

// keySnapshot is one immutable loaded state: keys and issuers.
type keySnapshot struct {
	keyfunc    keyfunc.Keyfunc
	keyIssuers map[string]string // kid -> Entra's per-key issuer, when given
	issuers    []issuerRule      // accepted issuers
	metadata   []issuerRule      // issuers the metadata documents announce
	kids       []string
}

// generation is one refresh attempt that requests can wait for.
type generation struct {
	done chan struct{}
	err  error
}

func newGeneration() *generation { return &generation{done: make(chan struct{})} }

type keyManager struct {
	s      *settings
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	snap    atomic.Pointer[keySnapshot]
	kick    chan struct{}
	waiters atomic.Int32

	mu          sync.Mutex
	inflight    *generation // the refresh running now, if any
	next        *generation // the refresh that starts next
	lastAttempt time.Time
	lastErr     error // outcome of the last finished load

	// Counters, for Stats.
	fetches  atomic.Int64
	failures atomic.Int64
}

func newKeyManager(s *settings) *keyManager {
	ctx, cancel := context.WithCancel(context.Background())
	m := &keyManager{
		s:      s,
		ctx:    ctx,
		cancel: cancel,
		kick:   make(chan struct{}, 1),
		next:   newGeneration(),
	}
	return m
}

// start launches the refresh loop and returns the generation of the first
// load, so the caller can wait for it.
func (m *keyManager) start() *generation {
	m.mu.Lock()
	first := m.next
	m.mu.Unlock()
	m.wg.Add(1)
	go m.run()
	return first
}

func (m *keyManager) close() {
	m.cancel()
	m.wg.Wait()
	if m.s.ownClient {
		m.s.HTTPClient.CloseIdleConnections()
	}
}

func (m *keyManager) run() {
	defer m.wg.Done()
	backoff := time.Duration(0)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-timer.C:
		case <-m.kick:
			// Requests asked for fresh keys. Keep fetches at least one
			// KeyMissRefreshInterval apart, whoever asks.
			m.mu.Lock()
			wait := time.Until(m.lastAttempt.Add(m.s.KeyMissRefreshInterval))
			m.mu.Unlock()
			if wait > 0 {
				select {
				case <-m.ctx.Done():
					return
				case <-time.After(wait):
				}
			}
		}
		if err := m.refresh(); err != nil {
			m.failures.Add(1)
			// Retry sooner than the regular refresh, never later.
			backoff = min(max(2*backoff, time.Second), maxRetryBackoff, m.s.KeyRefreshInterval)
			m.s.logger.Warn("entragate: loading Entra metadata or signing keys failed; keeping the last good keys",
				slog.String("error", err.Error()), slog.Duration("retry_in", backoff),
				slog.Bool("have_keys", m.snap.Load() != nil))
			timer.Reset(backoff)
			continue
		}
		backoff = 0
		timer.Reset(m.s.KeyRefreshInterval)
	}
}

// refresh performs one load and wakes the requests waiting for it.
func (m *keyManager) refresh() error {
	m.mu.Lock()
	g := m.next
	m.next = newGeneration()
	m.inflight = g
	m.lastAttempt = time.Now()
	m.mu.Unlock()

	ctx, cancel := context.WithTimeout(m.ctx, m.s.FetchTimeout)
	snap, err := m.load(ctx)
	cancel()
	if err == nil {
		m.snap.Store(snap)
	}

	m.mu.Lock()
	m.inflight = nil
	m.lastErr = err
	m.mu.Unlock()
	g.err = err
	close(g.done)
	return err
}

// load fetches the metadata documents, then every key set they name.
func (m *keyManager) load(ctx context.Context) (*keySnapshot, error) {
	urls := m.s.metadataURLs()
	docs := make(map[string]metadataDoc, len(urls))
	var errs []error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for version, u := range urls {
		wg.Go(func() {
			m.fetches.Add(1)
			doc, err := fetchMetadata(ctx, m.s.HTTPClient, u)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			docs[version] = doc
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	var issuers []issuerRule
	var jwksURIs []string
	// v2 first: its key set carries Entra's per-key issuer, which wins when
	// both sets list a key.
	for _, version := range []string{"2.0", "1.0"} {
		doc, ok := docs[version]
		if !ok {
			continue
		}
		issuers = append(issuers, issuerRule{template: doc.Issuer, version: version})
		if !slices.Contains(jwksURIs, doc.JWKSURI) {
			jwksURIs = append(jwksURIs, doc.JWKSURI)
		}
	}
	announced := slices.Clone(issuers)
	if len(m.s.Issuers) > 0 {
		issuers = issuers[:0]
		for _, iss := range m.s.Issuers {
			issuers = append(issuers, issuerRule{template: iss, version: issuerVersion(iss)})
		}
	}
	type keysResult struct {
		keys    []signingKey
		skipped []string
		err     error
	}
	keyResults := make([]keysResult, len(jwksURIs))
	for i, u := range jwksURIs {
		wg.Go(func() {
			m.fetches.Add(1)
			k, skipped, err := fetchKeySet(ctx, m.s.HTTPClient, u)
			keyResults[i] = keysResult{k, skipped, err}
		})
	}
	wg.Wait()

	snap := &keySnapshot{keyIssuers: map[string]string{}, issuers: issuers, metadata: announced}
	var all []jwkset.JWK
	var keyErrs []error
	for i, r := range keyResults {
		if r.err != nil {
			// Entra's v1 and v2 key sets hold the same keys: one failing set
			// does not make the others' keys less trustworthy.
			keyErrs = append(keyErrs, r.err)
			continue
		}
		if len(r.skipped) > 0 {
			m.s.logger.Info("entragate: skipped unusable keys in key set",
				slog.String("jwks_uri", jwksURIs[i]), slog.Any("skipped", r.skipped))
		}
		for _, k := range r.keys {
			kid := k.jwk.Marshal().KID
			if slices.Contains(snap.kids, kid) {
				continue
			}
			snap.kids = append(snap.kids, kid)
			all = append(all, k.jwk)
			if k.issuer != "" {
				snap.keyIssuers[kid] = k.issuer
			}
		}
	}
	if len(all) == 0 {
		return nil, errors.Join(keyErrs...)
	}
	if len(keyErrs) > 0 {
		m.s.logger.Warn("entragate: a key set failed to load; using the others",
			slog.String("error", errors.Join(keyErrs...).Error()))
	}
	storage := jwkset.NewMemoryStorage()
	if err := storage.KeyReplaceAll(ctx, all); err != nil {
		return nil, err
	}
	kf, err := keyfunc.New(keyfunc.Options{Ctx: m.ctx, Storage: storage})
	if err != nil {
		return nil, err
	}
	snap.keyfunc = kf
	return snap, nil
}

// current returns the loaded snapshot, waiting for the first load if none
// has succeeded yet.
func (m *keyManager) current(ctx context.Context) (*keySnapshot, error) {
	if snap := m.snap.Load(); snap != nil {
		return snap, nil
	}
	return m.await(ctx, false)
}

// await waits for a key-set load: one already running, or else a new one.
// If none is running and the last one started less than
// KeyMissRefreshInterval ago, await schedules one and returns errKeySetFresh
// at once: requests are never held for the interval. With fresh (the caller
// saw a key ID the current set lacks) a failed load is an error even if
// older keys exist.
func (m *keyManager) await(ctx context.Context, fresh bool) (*keySnapshot, error) {
	if m.ctx.Err() != nil {
		return nil, ErrClosed
	}
	if m.waiters.Add(1) > maxKeyWaiters {
		m.waiters.Add(-1)
		return nil, errTooManyWaiters
	}
	defer m.waiters.Add(-1)

	// A load already running is fresher than the snapshot the caller looked
	// at, so even a caller that needs fresh keys joins it.
	m.mu.Lock()
	g := m.next
	joined := m.inflight != nil
	if joined {
		g = m.inflight
	}
	recent := time.Since(m.lastAttempt) < m.s.KeyMissRefreshInterval
	lastErr := m.lastErr
	m.mu.Unlock()
	if !joined { // else a load is running: its answer is worth waiting for
		select {
		case m.kick <- struct{}{}:
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
			return nil, errKeySetFresh
		}
	}

	timer := time.NewTimer(m.s.KeyMissRefreshInterval + m.s.FetchTimeout)
	defer timer.Stop()
	select {
	case <-g.done:
		if snap := m.snap.Load(); snap != nil && (g.err == nil || !fresh) {
			return snap, nil
		}
		return nil, g.err
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-timer.C:
		return nil, errors.New("timed out waiting for signing keys")
	case <-m.ctx.Done():
		return nil, ErrClosed
	}
}

// retryAfter is the Retry-After for 503 answers: when a new load may start.
func (m *keyManager) retryAfter() int {
	m.mu.Lock()
	wait := time.Until(m.lastAttempt.Add(m.s.KeyMissRefreshInterval))
	m.mu.Unlock()
	return int(math.Ceil(max(wait, time.Second).Seconds()))
}

// unavailable turns a failed wait into the caller's answer.
func (m *keyManager) unavailable(err error) *Error {
	if errors.Is(err, ErrClosed) {
		e := newError(ErrClosed, "the API is shutting down", nil)
		e.RetryAfterSeconds = 1
		return e
	}
	e := newError(ErrKeysUnavailable, "the signing keys of the identity provider cannot be loaded right now; retry later", err)
	e.RetryAfterSeconds = m.retryAfter()
	return e
}

// verificationKey finds the key for a token, refreshing the key set once if
// the key ID is unknown. It also applies Entra's signing-key issuer rule.
func (m *keyManager) verificationKey(ctx context.Context, snap *keySnapshot, t *jwt.Token, iss, tid string) (any, error) {
	lookup := func(s *keySnapshot) (any, bool, error) {
		key, err := s.keyfunc.KeyfuncCtx(ctx)(t)
		return key, err != nil && errors.Is(err, jwkset.ErrKeyNotFound), err
	}
	key, missing, err := lookup(snap)
	if cur := m.snap.Load(); missing && cur != nil && cur != snap {
		// A load finished since the caller read its snapshot.
		snap = cur
		key, missing, err = lookup(snap)
	}
	if missing {
		fresh, waitErr := m.await(ctx, true)
		switch {
		case errors.Is(waitErr, errTooManyWaiters), errors.Is(waitErr, errKeySetFresh):
			return nil, newError(ErrUnknownSigningKey, "the token's signing key is not published by the tenant", err)
		case waitErr != nil:
			return nil, m.unavailable(waitErr)
		}
		snap = fresh
		key, missing, err = lookup(snap)
	}
	switch {
	case missing:
		return nil, newError(ErrUnknownSigningKey, "the token's signing key is not published by the tenant", err)
	case err != nil:
		return nil, newError(ErrUnknownSigningKey, "", err)
	}
	kid, _ := t.Header["kid"].(string)
	if keyIss, ok := snap.keyIssuers[kid]; ok && !keyIssuerAllows(keyIss, iss, tid, snap.metadata) {
		return nil, newError(ErrInvalidIssuer, "the token's signing key is not valid for its issuer", nil)
	}
	return key, nil
}

// keyIssuerAllows applies Microsoft's signing-key issuer validation: a key
// that names an issuer may sign only for that issuer (with {tenantid}
// filled from tid). v1 tokens, whose sts.windows.net issuer never matches a
// v2 key's issuer, pass when the key's issuer is one of the v2 metadata
// issuers for the same tenant.
func keyIssuerAllows(keyIssuer, iss, tid string, metadata []issuerRule) bool {
	rule := issuerRule{template: keyIssuer}
	if rule.match(iss, tid) {
		return true
	}
	for _, r := range metadata {
		if r.version == "2.0" && rule.match(replaceTenant(r.template, tid), tid) {
			return true
		}
	}
	return false
}

func replaceTenant(template, tid string) string {
	return strings.Replace(template, tenantPlaceholder, tid, 1)
}

// Stats are counters for monitoring the key manager.
type Stats struct {
	// KeysLoaded is true once a key set has been loaded.
	KeysLoaded bool
	// KeyIDs are the key IDs currently trusted.
	KeyIDs []string
	// Fetches counts metadata and key-set requests made; Failures counts
	// load attempts that failed.
	Fetches, Failures int64
}

func (m *keyManager) stats() Stats {
	st := Stats{Fetches: m.fetches.Load(), Failures: m.failures.Load()}
	if snap := m.snap.Load(); snap != nil {
		st.KeysLoaded = true
		st.KeyIDs = append([]string(nil), snap.kids...)
	}
	return st
}

// httpClientCheck refuses redirects to places we would not fetch from.
func httpClientCheck(req *http.Request, via []*http.Request) error {
	if len(via) >= 5 {
		return errors.New("too many redirects")
	}
	if _, err := parseFetchURL(req.URL.String()); err != nil {
		return fmt.Errorf("refusing redirect: %w", err)
	}
	return nil
}
