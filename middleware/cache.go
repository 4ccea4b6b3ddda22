package middleware

import (
	"context"
	"crypto/rsa"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/entragate/entragate/claims"
)

// The verified-token cache. A client reuses one access token for up to an
// hour or more, so most requests carry a token seen before. Once a token's
// signature, issuer, tenant and keys have been verified, the cache answers
// later requests with the same token without another RSA verification;
// what a hit still checks, and why, is fromCache's contract.
//
// Only tokens whose signature was verified enter the cache, so junk cannot
// evict good entries. Entries are found by the token's signature (a
// quarter of the token: less to hash) and then compared with the whole
// token: no other token can hit an entry, even one that copies its
// signature. Each Authenticator has its own: the same token may be good
// for one API and not for another.
//
// Reads take no lock: a sync.Map look-up and a few atomic loads. Inserts
// and evictions (CLOCK: an entry used since the hand last passed gets a
// second chance) take a mutex, on the path that has just paid for an RSA
// verification anyway.
type tokenCache struct {
	entries  sync.Map // signature segment -> *cacheEntry
	maxCount int
	maxBytes int

	mu    sync.Mutex
	ring  []*cacheEntry // CLOCK slots
	free  []int         // empty slots
	hand  int
	count int
	bytes int

	hits, misses stripedCounter
	evictions    atomic.Int64
}

// cacheEntry is one verified token.
type cacheEntry struct {
	token  string
	sig    string // the map key: token's signature segment
	claims *claims.Claims
	// validFrom and validUntil bound when the token's times pass
	// checkTimes (Unix nanoseconds, leeway included).
	validFrom, validUntil int64
	src                   *source
	kid                   string
	pub                   *rsa.PublicKey
	// generation is the Authenticator's load generation the entry was
	// last checked against: any document loading since makes the next
	// hit check the entry again.
	generation atomic.Uint64
	// admittedUntil is when the tenant's admission must be asked again
	// (UnixNano; 0: never, the configuration alone admits it).
	admittedUntil atomic.Int64
	used          atomic.Bool
	slot          int
	size          int
}

// entryOverhead approximates what an entry costs beyond the token and the
// claims payload: the entry, the Claims struct, its slices, the map node.
const entryOverhead = 1024

func newTokenCache(maxCount, maxBytes int) *tokenCache {
	c := &tokenCache{maxCount: maxCount, maxBytes: maxBytes, ring: make([]*cacheEntry, maxCount), free: make([]int, maxCount)}
	for i := range c.free {
		c.free[i] = maxCount - 1 - i
	}
	return c
}

// get returns the entry for token, if any.
func (c *tokenCache) get(token string) *cacheEntry {
	sig := signatureOf(token)
	v, ok := c.entries.Load(sig)
	// The map compared the signatures; the rest must be equal too.
	if !ok || len(v.(*cacheEntry).token) != len(token) || v.(*cacheEntry).token[:len(token)-len(sig)] != token[:len(token)-len(sig)] {
		c.misses.add()
		return nil
	}
	e := v.(*cacheEntry)
	if !e.used.Load() {
		e.used.Store(true)
	}
	c.hits.add()
	return e
}

// signatureOf returns the third segment of a compact JWS, or the whole
// string. RS256 signatures of 2048, 3072 and 4096-bit keys have fixed
// lengths, checked first; otherwise two forward scans, which are
// vectorised (a backward scan is not). A wrong split only misses: the
// cache is filled with the real signature, and compares whole tokens.
func signatureOf(token string) string {
	for _, n := range [...]int{342, 512, 683} {
		if len(token) > n && token[len(token)-n-1] == '.' {
			return token[len(token)-n:]
		}
	}
	i := strings.IndexByte(token, '.')
	if i < 0 {
		return token
	}
	j := strings.IndexByte(token[i+1:], '.')
	if j < 0 {
		return token
	}
	return token[i+1+j+1:]
}

// add stores a verified token, evicting others to stay within bounds. sig
// is its signature segment.
func (c *tokenCache) add(token, sig string, e *cacheEntry) {
	// The token, the payload kept in the claims (three quarters of the
	// token), and the claims' own strings: about twice the token.
	e.size = 2*len(token) + entryOverhead
	if e.size > c.maxBytes {
		return
	}
	// A copy: the caller's string may share memory with a larger buffer.
	e.token = strings.Clone(token)
	e.sig = e.token[len(e.token)-len(sig):]
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, dup := c.entries.Load(e.sig); dup {
		return // a concurrent request verified the same token
	}
	for c.count >= c.maxCount || c.bytes+e.size > c.maxBytes {
		c.evictOneLocked()
	}
	e.slot = c.free[len(c.free)-1]
	c.free = c.free[:len(c.free)-1]
	c.ring[e.slot] = e
	c.count++
	c.bytes += e.size
	c.entries.Store(e.sig, e)
}

// evictOneLocked runs the CLOCK hand until it finds an entry not used
// since its last pass. Two turns at most: the first clears every mark.
func (c *tokenCache) evictOneLocked() {
	for range 2*len(c.ring) + 1 {
		e := c.ring[c.hand]
		c.hand = (c.hand + 1) % len(c.ring)
		if e == nil {
			continue
		}
		if e.used.Load() {
			e.used.Store(false)
			continue
		}
		c.removeLocked(e)
		c.evictions.Add(1)
		return
	}
}

// remove drops e, if it is still cached.
func (c *tokenCache) remove(e *cacheEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ring[e.slot] == e {
		c.removeLocked(e)
	}
}

func (c *tokenCache) removeLocked(e *cacheEntry) {
	c.entries.CompareAndDelete(e.sig, e)
	c.ring[e.slot] = nil
	c.free = append(c.free, e.slot)
	c.count--
	c.bytes -= e.size
}

// CacheStats counts the verified-token cache's work.
type CacheStats struct {
	// Entries and Bytes are what the cache holds now (Bytes approximates
	// tokens, claims and bookkeeping).
	Entries, Bytes int
	// Hits counts requests answered from the cache; Misses those whose
	// token was not in it; Evictions entries dropped to make room.
	Hits, Misses, Evictions int64
}

func (c *tokenCache) stats() CacheStats {
	c.mu.Lock()
	st := CacheStats{Entries: c.count, Bytes: c.bytes}
	c.mu.Unlock()
	st.Hits, st.Misses, st.Evictions = c.hits.load(), c.misses.load(), c.evictions.Load()
	return st
}

// newEntry is what the cache remembers of a token verified against the
// documents of generation.
func (a *Authenticator) newEntry(c *claims.Claims, kid string, v verified, generation uint64) *cacheEntry {
	ent := &cacheEntry{claims: c, src: v.src, kid: kid, pub: v.pub}
	ent.validFrom, ent.validUntil = validityWindow(c, a.s.leeway)
	ent.generation.Store(generation)
	ent.admittedUntil.Store(unixNano(v.admittedUntil))
	return ent
}

// fromCache answers a token from the cache. This is the cached path's
// contract, enforced here and nowhere else. A hit skips the header,
// claims parsing, the claim checks that cannot change (audience, ID-token
// markers, scp/roles presence: the token is the same bytes) and the RSA
// verification, and re-checks what can change since the token was
// verified:
//
//   - its times (exp, nbf, iat with the leeway) against the clock, on
//     every hit, as a comparison with the precomputed validity window;
//   - after any document of the Provider loaded: that the key is still
//     published by the same document with the same material, still
//     allowed to sign for the token's issuer (whichever of the authority's
//     documents states that), and that the issuer still routes to that
//     document; otherwise the entry is dropped and the token is validated
//     again from scratch;
//   - its tenant's admission, once the admission answer's own cache time
//     ends;
//   - authorization (guests, APIConfig.Scopes and Roles, and the route's
//     rules after it), on every hit, from the claims.
//
// hit is false when the token must go through full validation.
func (a *Authenticator) fromCache(ctx context.Context, raw string, d *decision) (c *claims.Claims, e *Error, hit bool) {
	ent := a.cache.get(raw)
	if ent == nil {
		return nil, nil, false
	}
	if g := a.p.generation.Load(); g != ent.generation.Load() {
		if !a.stillVerified(ent) {
			a.cache.remove(ent)
			return nil, nil, false
		}
		ent.generation.Store(g)
	}
	c = ent.claims
	d.cached, d.verified, d.src, d.claims = true, true, ent.src, c
	now := a.p.s.now()
	nanos := now.UnixNano()
	if nanos < ent.validFrom || nanos >= ent.validUntil {
		if e := checkTimes(c, now, a.s.leeway); e != nil {
			if e.Reason == ErrTokenExpired {
				a.cache.remove(ent)
			}
			return c, e, true
		}
	}
	if until := ent.admittedUntil.Load(); until != 0 && nanos >= until {
		next, e := ent.src.auth.admitTenant(ctx, tenantOf(ent.src.state.Load(), c))
		if e != nil {
			if e.Reason == ErrTenantNotAllowed {
				a.cache.remove(ent)
			}
			return c, e, true
		}
		ent.admittedUntil.Store(unixNano(next))
	}
	return c, a.authorize(ent.src, c), true
}

// stillVerified re-checks an entry against the documents loaded now: its
// key, the key's issuer rule, and the issuer's route.
func (a *Authenticator) stillVerified(ent *cacheEntry) bool {
	cur := ent.src.state.Load()
	pub, err := cur.publicKey(context.Background(), ent.kid)
	return err == nil && pub.Equal(ent.pub) &&
		ent.src.keyMaySign(context.Background(), cur, ent.kid, ent.claims.Issuer, tenantOf(cur, ent.claims), false) == nil &&
		slices.Contains(a.p.router.index.Load().lookup(ent.claims.Issuer, ent.claims.TenantID), ent.src)
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// stripedCounter is a counter that concurrent requests update without
// fighting over one cache line: each goroutine picks a stripe from the
// address of its own stack, which differs between goroutines and costs
// nothing to read (a random number costs more than the rest of the count).
type stripedCounter struct {
	stripes [16]struct {
		n atomic.Int64
		_ [120]byte // a stripe per 128-byte pair of cache lines
	}
}

func (s *stripedCounter) add() {
	var onStack byte
	// The address is only hashed, never dereferenced.
	a := uint64(uintptr(unsafe.Pointer(&onStack))) >> 10
	s.stripes[(a*0x9e3779b97f4a7c15)>>60].n.Add(1)
}

func (s *stripedCounter) load() int64 {
	var n int64
	for i := range s.stripes {
		n += s.stripes[i].n.Load()
	}
	return n
}
