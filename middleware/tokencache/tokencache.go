// Package tokencache keeps what several instances of a web app or API must
// share in Redis: MSAL for Go's token cache (confidential.WithCache),
// on-behalf-of tokens, and the web app's sessions. Every value is sealed
// with AES-256-GCM under a key the instances share (a copy of Redis holds
// no token, and a value moved to another key does not open), and an
// in-memory layer answers repeated reads and keeps the instance working
// when Redis is down or slow: a failed Redis call is logged, never an
// error for the request. What every instance must see at once (a web
// app's sign-out) has GetFresh and SetStrict, which do not lean on the
// memory layer.
//
//	store, err := tokencache.New(tokencache.Config{
//		Redis: redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"}),
//		Key:   key, // 32 bytes, e.g. base64-decoded from TOKEN_CACHE_KEY
//	})
//	app, err := confidential.New(authority, clientID, cred, confidential.WithCache(store.MSAL("webapp", 8*time.Hour)))
package tokencache

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Defaults of Config.
const (
	DefaultPrefix       = "entragate:"
	DefaultTimeout      = 300 * time.Millisecond
	DefaultLocalTTL     = 10 * time.Second
	DefaultLocalEntries = 10000
)

// Config configures a Store.
type Config struct {
	// Redis is the shared Redis (a *redis.Client, *redis.ClusterClient or
	// any UniversalClient). Required. Its user needs GET, SET, DEL and
	// EVAL (missed deletes are replayed with a compare-and-delete script).
	Redis redis.UniversalClient
	// Key seals every value: 32 random bytes, the same for every instance.
	// Required.
	Key []byte
	// Prefix starts every Redis key. Default DefaultPrefix.
	Prefix string
	// Timeout bounds each Redis call. Default DefaultTimeout.
	Timeout time.Duration
	// LocalTTL is how long the memory layer answers a read without asking
	// Redis; when Redis cannot be reached it answers with what it has
	// until the value itself expires. Default DefaultLocalTTL.
	LocalTTL time.Duration
	// LocalEntries bounds the memory layer. Default DefaultLocalEntries.
	LocalEntries int
	// Logger receives Redis failures (Warn, at most one per 10 s).
	// Default slog.Default().
	Logger *slog.Logger
}

// Store is an encrypted key-value store in Redis with a memory layer in
// front. It is safe for concurrent use.
type Store struct {
	rdb                redis.UniversalClient
	aead               cipher.AEAD
	prefix             string
	timeout, localTTL  time.Duration
	maxLocal           int
	logger             *slog.Logger
	lastWarn           atomic.Int64 // unix nanoseconds of the last Redis warning
	redisErrors, local atomic.Int64
	pausedUntil        atomic.Int64 // unix nanoseconds: Redis is not asked before
	inflight           atomic.Int32 // Redis calls running
	probing            atomic.Bool
	replaying          atomic.Bool  // a goroutine replays the deletes Redis missed
	lastKeyWarn        atomic.Int64 // unix nanoseconds of the last "does not open" warning

	mu       sync.Mutex
	entries  map[string]*entry
	pendDels map[string]pendingDelete // deletes Redis missed, replayed when it is back
	dropped  atomic.Int64             // deletes missed with no room left to remember them
	deletes  uint64                   // Deletes so far: a read that overlapped one keeps nothing
	names    []byte                   // keys Name's HMAC, derived from Config.Key
}

type entry struct {
	value   []byte // plain
	absent  bool   // GetFresh found no value: remembered for LocalTTL, for outages
	expires time.Time
	fetched time.Time // when it was last read from or written to Redis
}

// pendingDelete is a delete Redis missed: since when, and until when it is
// worth replaying.
type pendingDelete struct{ since, until time.Time }

// ErrUnavailable is the error of a read Redis could not answer and the
// memory layer could not either, and of a SetStrict Redis did not take.
var ErrUnavailable = errors.New("tokencache: Redis cannot be reached")

// New checks cfg and returns a Store. It does not contact Redis.
func New(cfg Config) (*Store, error) {
	if cfg.Redis == nil {
		return nil, errors.New("tokencache: Config.Redis is required")
	}
	if len(cfg.Key) != 32 {
		return nil, errors.New("tokencache: Config.Key must be 32 bytes (AES-256)")
	}
	block, err := aes.NewCipher(cfg.Key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	s := &Store{rdb: cfg.Redis, aead: aead, prefix: cfg.Prefix, timeout: cfg.Timeout, localTTL: cfg.LocalTTL,
		maxLocal: cfg.LocalEntries, logger: cfg.Logger, entries: map[string]*entry{}, pendDels: map[string]pendingDelete{}}
	mac := hmac.New(sha256.New, cfg.Key)
	mac.Write([]byte("entragate tokencache: key names"))
	s.names = mac.Sum(nil)
	if s.prefix == "" {
		s.prefix = DefaultPrefix
	}
	if s.timeout <= 0 {
		s.timeout = DefaultTimeout
	}
	if s.localTTL <= 0 {
		s.localTTL = DefaultLocalTTL
	}
	if s.maxLocal <= 0 {
		s.maxLocal = DefaultLocalEntries
	}
	if s.logger == nil {
		s.logger = slog.Default()
	}
	return s, nil
}

// Get returns the value of key, nil when there is none (or it cannot be
// opened). When Redis cannot be reached it answers from the memory layer,
// even with a value older than LocalTTL; with nothing there, it returns
// ErrUnavailable, so that a caller can tell "none" from "cannot say".
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	return s.get(ctx, key, false)
}

// GetFresh is Get without the memory layer's answer while Redis can be
// reached: it asks Redis every time, for a value another instance may
// have just changed (a sign-out). When Redis cannot be reached it answers
// with what it last read from Redis (the value, or that there was none)
// if that was within LocalTTL, and ErrUnavailable otherwise: what it
// says is never older than LocalTTL.
func (s *Store) GetFresh(ctx context.Context, key string) ([]byte, error) {
	return s.get(ctx, key, true)
}

func (s *Store) get(ctx context.Context, key string, fresh bool) ([]byte, error) {
	now := time.Now()
	s.mu.Lock()
	e := s.entries[key]
	if p, deleted := s.pendDels[key]; deleted {
		s.mu.Unlock()
		if value, answered, err := s.pendingRead(key, p, e, now); answered {
			return value, err
		}
		s.mu.Lock()
		e = s.entries[key]
	}
	deletes := s.deletes
	if e != nil && now.After(e.expires) {
		delete(s.entries, key)
		e = nil
	}
	if e != nil && !e.absent && !fresh && now.Sub(e.fetched) < s.localTTL {
		s.mu.Unlock()
		s.local.Add(1)
		return e.value, nil
	}
	s.mu.Unlock()

	full := s.prefix + key
	var sealed []byte
	err := s.redis(ctx, "reading", func(ctx context.Context) error {
		var err error
		sealed, err = s.rdb.Get(ctx, full).Bytes()
		return err
	})
	switch {
	case errors.Is(err, redis.Nil):
		s.replayDeletes()
		s.forget(key)
		if fresh {
			s.rememberAbsent(key, now)
		}
		return nil, nil
	case err != nil:
		return s.unreachable(e, fresh, now)
	}
	s.replayDeletes()
	value, _, expires, err := s.open(full, sealed)
	if err != nil {
		// Another key's value, or another Key's: not ours to read.
		s.warnKey(ctx, full)
		return nil, nil
	}
	if now.After(expires) {
		return nil, nil
	}
	s.rememberRead(key, value, expires.Sub(now), now, deletes)
	return value, nil
}

// pendingRead answers a read of a key deleted here and not yet in Redis:
// what Redis holds is never served before the delete is replayed, now if
// Redis answers (then answered is false: read on); meanwhile only a value
// written here since.
func (s *Store) pendingRead(key string, p pendingDelete, e *entry, now time.Time) (value []byte, answered bool, err error) {
	if s.replayKeys([]string{key}, []time.Time{p.since}) {
		return nil, false, nil
	}
	if e != nil && !e.absent && e.fetched.After(p.since) && now.Before(e.expires) {
		return e.value, true, nil
	}
	return nil, true, ErrUnavailable
}

// unreachable answers a read Redis did not: from e as Get or GetFresh
// allow, else ErrUnavailable.
func (s *Store) unreachable(e *entry, fresh bool, now time.Time) ([]byte, error) {
	switch {
	case e != nil && fresh && now.Sub(e.fetched) < s.localTTL:
		s.local.Add(1)
		return e.value, nil // nil when Redis had none
	case e != nil && !fresh && !e.absent:
		s.local.Add(1)
		return e.value, nil // possibly stale, not expired
	}
	return nil, ErrUnavailable
}

// Set stores value under key for ttl. When Redis cannot be reached the
// memory layer keeps it, and the failure is logged.
func (s *Store) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	err := s.set(ctx, key, value, ttl, false)
	if errors.Is(err, ErrUnavailable) {
		return nil
	}
	return err
}

// SetStrict is Set for a value other instances must see (a sign-out): it
// returns ErrUnavailable when Redis could not store it, and then leaves
// the memory layer as it was, so that the caller can refuse to go on as
// if it had been stored, and nothing in this instance acts on it either.
func (s *Store) SetStrict(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if ttl <= 0 {
		return errors.New("tokencache: SetStrict needs a positive ttl")
	}
	return s.set(ctx, key, value, ttl, true)
}

func (s *Store) set(ctx context.Context, key string, value []byte, ttl time.Duration, strict bool) error {
	if ttl <= 0 {
		return s.Delete(ctx, key)
	}
	full := s.prefix + key
	now := time.Now()
	sealed, err := s.seal(full, value, now.Add(ttl))
	if err != nil {
		return err
	}
	if !strict {
		s.remember(key, value, ttl, now)
	}
	err = s.redis(ctx, "writing", func(ctx context.Context) error { return s.rdb.Set(ctx, full, sealed, ttl).Err() })
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if strict {
		s.remember(key, value, ttl, now)
	}
	s.mu.Lock()
	delete(s.pendDels, key) // a delete missed before this write must not undo it
	s.mu.Unlock()
	s.replayDeletes()
	return nil
}

// Delete removes key. A delete Redis misses is retried with later calls,
// so that a signed-out session does not come back with Redis.
func (s *Store) Delete(ctx context.Context, key string) error {
	s.mu.Lock()
	delete(s.entries, key)
	s.deletes++
	s.mu.Unlock()
	asked := time.Now()
	err := s.redis(ctx, "deleting", func(ctx context.Context) error { return s.rdb.Del(ctx, s.prefix+key).Err() })
	// Again once Redis answered: a read that began during the DEL's round
	// trip may have read the old value; it keeps nothing (the count moved)
	// or, if it kept it already, loses it here.
	s.mu.Lock()
	delete(s.entries, key)
	s.deletes++
	s.mu.Unlock()
	if err != nil {
		now := asked
		s.mu.Lock()
		room := len(s.pendDels) < s.maxLocal
		if room {
			s.pendDels[key] = pendingDelete{since: now, until: now.Add(24 * time.Hour)}
		}
		s.mu.Unlock()
		if !room {
			s.dropped.Add(1)
			s.warn("remembering a missed delete", errors.New("too many missed deletes (LocalEntries): this one is dropped"))
		}
	}
	return nil
}

// Stats counts the Store's work.
type Stats struct {
	// LocalHits counts reads the memory layer answered; RedisErrors the
	// Redis calls that failed; PendingDeletes the deletes waiting for
	// Redis to come back; DroppedDeletes those missed with no room left
	// to remember them (LocalEntries).
	LocalHits, RedisErrors, DroppedDeletes int64
	PendingDeletes                         int
}

// Stats reports the Store's counters.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{LocalHits: s.local.Load(), RedisErrors: s.redisErrors.Load(), DroppedDeletes: s.dropped.Load(), PendingDeletes: len(s.pendDels)}
}

// replayDeletes replays the deletes Redis missed, now that it answers
// again: in the background, one goroutine at a time, a pipeline of up to
// 100 deletes per call (each call bounded by the Store's timeout), so
// that no request waits for them.
func (s *Store) replayDeletes() {
	s.mu.Lock()
	pending := len(s.pendDels)
	s.mu.Unlock()
	if pending == 0 || !s.replaying.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer s.replaying.Store(false)
		for s.replayBatch() {
		}
	}()
}

// replayBatch replays up to 100 pending deletes; it reports whether more
// wait and Redis took these.
func (s *Store) replayBatch() bool {
	s.mu.Lock()
	keys := make([]string, 0, 100)
	since := make([]time.Time, 0, 100)
	now := time.Now()
	for k, p := range s.pendDels {
		if now.After(p.until) {
			delete(s.pendDels, k)
			continue
		}
		if len(keys) < cap(keys) {
			keys, since = append(keys, k), append(since, p.since)
		}
	}
	s.mu.Unlock()
	if len(keys) == 0 || !s.replayKeys(keys, since) {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pendDels) > 0
}

// replayKeys replays the missed deletes of keys (asked for at since): a
// value written after one was asked for (by this instance or another)
// stays, the delete meant an older one; what is deleted is the value
// read, and only if Redis still holds it. It reports whether Redis took
// them all, and then forgets them.
func (s *Store) replayKeys(keys []string, since []time.Time) bool {
	err := s.redis(context.Background(), "deleting", func(ctx context.Context) error {
		read := s.rdb.Pipeline() // split by slot on a cluster, where one command on many keys is not
		gets := make([]*redis.StringCmd, len(keys))
		for i, k := range keys {
			gets[i] = read.Get(ctx, s.prefix+k)
		}
		if _, err := read.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		del := s.rdb.Pipeline()
		for i, k := range keys {
			sealed, err := gets[i].Bytes()
			if err != nil {
				continue // gone already
			}
			// Written after the delete was asked for: by the writer's
			// clock, so instances' clocks must agree to within the time
			// between a missed delete and another instance's new write
			// of the key (otherwise that write is lost: for MSAL, a new
			// sign-in's tokens, and the user signs in again).
			if _, written, _, err := s.open(s.prefix+k, sealed); err == nil && written.After(since[i]) {
				continue
			}
			del.Eval(ctx, deleteIfUnchanged, []string{s.prefix + k}, sealed)
		}
		if del.Len() == 0 {
			return nil
		}
		_, err := del.Exec(ctx)
		return err
	})
	if err != nil {
		return false
	}
	s.mu.Lock()
	for i, k := range keys {
		if p, ok := s.pendDels[k]; ok && p.since.Equal(since[i]) {
			delete(s.pendDels, k)
		}
	}
	s.mu.Unlock()
	return true
}

// deleteIfUnchanged deletes a key if it still holds the value read.
const deleteIfUnchanged = `if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`

// rememberAbsent remembers, for GetFresh during an outage, that Redis had
// no value for key.
func (s *Store) rememberAbsent(key string, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.entries) >= s.maxLocal {
		s.evictLocked(now)
	}
	s.entries[key] = &entry{absent: true, expires: now.Add(s.localTTL), fetched: now}
}

// rememberRead remembers what a read found, unless a Delete ran since the
// read began (deletes): the value may be the one deleted.
// The check and the insert are one critical section: a Delete between
// them would otherwise be undone.
func (s *Store) rememberRead(key string, value []byte, ttl time.Duration, now time.Time, deletes uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.deletes == deletes {
		s.rememberLocked(key, value, ttl, now)
	}
}

func (s *Store) remember(key string, value []byte, ttl time.Duration, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rememberLocked(key, value, ttl, now)
}

func (s *Store) rememberLocked(key string, value []byte, ttl time.Duration, now time.Time) {
	if ttl <= 0 {
		ttl = s.localTTL
	}
	if _, ok := s.entries[key]; !ok && len(s.entries) >= s.maxLocal {
		s.evictLocked(now)
	}
	s.entries[key] = &entry{value: value, expires: now.Add(ttl), fetched: now}
}

// evictLocked makes room: expired entries first, then the least recently
// fetched.
func (s *Store) evictLocked(now time.Time) {
	var oldest string
	var oldestAt time.Time
	for k, e := range s.entries {
		if now.After(e.expires) {
			delete(s.entries, k)
			continue
		}
		if oldest == "" || e.fetched.Before(oldestAt) {
			oldest, oldestAt = k, e.fetched
		}
	}
	if len(s.entries) >= s.maxLocal && oldest != "" {
		delete(s.entries, oldest)
	}
}

func (s *Store) forget(key string) {
	s.mu.Lock()
	delete(s.entries, key)
	s.mu.Unlock()
}

// Limits of the Redis calls: beyond maxInflight calls still running (past
// their timeout, on a client that ignores it), or within breakerPause of
// a failure, Redis is not asked: the memory layer answers at once, and one
// call at a time probes whether Redis is back.
const (
	maxInflight  = 64
	breakerPause = time.Second
)

// errSkipped: Redis was not asked.
var errSkipped = errors.New("tokencache: Redis skipped after a recent failure")

// redis runs call with the Store's timeout, answering by it even if the
// client does not (go-redis ignores context deadlines unless
// ContextTimeoutEnabled is set): the call goes on, counted, until the
// client's own timeout ends it. A failure is logged (rate-limited) and
// pauses Redis for breakerPause.
func (s *Store) redis(ctx context.Context, op string, call func(context.Context) error) error {
	now := time.Now().UnixNano()
	if until := s.pausedUntil.Load(); now < until || s.inflight.Load() >= maxInflight {
		if now < until || !s.probing.CompareAndSwap(false, true) {
			return errSkipped
		}
		defer s.probing.Store(false)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
	defer cancel()
	done := make(chan error, 1)
	s.inflight.Add(1)
	go func() {
		defer s.inflight.Add(-1)
		done <- call(ctx)
	}()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil && !errors.Is(err, redis.Nil) {
		s.pausedUntil.Store(time.Now().Add(breakerPause).UnixNano())
		s.warn(op, err)
	}
	return err
}

// warnKey logs a value that does not open (another Key's, or moved from
// another key), at most once per 10 s: every read of it would log again.
func (s *Store) warnKey(ctx context.Context, key string) {
	now := time.Now().UnixNano()
	last := s.lastKeyWarn.Load()
	if now-last < int64(10*time.Second) || !s.lastKeyWarn.CompareAndSwap(last, now) {
		return
	}
	s.logger.WarnContext(ctx, "tokencache: a value in Redis does not open with this Key (do all instances share one?); ignored", slog.String("key", key))
}

// warn logs a Redis failure, at most once per 10 s.
func (s *Store) warn(op string, err error) {
	s.redisErrors.Add(1)
	now := time.Now().UnixNano()
	last := s.lastWarn.Load()
	if now-last < int64(10*time.Second) || !s.lastWarn.CompareAndSwap(last, now) {
		return
	}
	s.logger.Warn("tokencache: Redis failed; going on with the memory layer", slog.String("op", op), slog.String("error", err.Error()))
}

// sealed format: version 2, nonce, then sealed with AES-256-GCM the
// expiry (Unix seconds, 8 bytes), the time of writing (Unix nanoseconds,
// 8 bytes) and the value; the Redis key is the additional data, so a value
// copied to another key does not open. Version 1 had no time of writing.
const sealVersion = 2

func (s *Store) seal(key string, value []byte, expires time.Time) ([]byte, error) {
	n := s.aead.NonceSize()
	out := make([]byte, 1+n, 1+n+16+len(value)+s.aead.Overhead())
	out[0] = sealVersion
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, err
	}
	plain := binary.BigEndian.AppendUint64(make([]byte, 0, 16+len(value)), uint64(expires.Unix()))
	plain = binary.BigEndian.AppendUint64(plain, uint64(time.Now().UnixNano()))
	return s.aead.Seal(out, out[1:1+n], append(plain, value...), []byte(key)), nil
}

// open returns a sealed value, when it was written (zero for version 1)
// and when it expires.
func (s *Store) open(key string, sealed []byte) (value []byte, written, expires time.Time, err error) {
	n := s.aead.NonceSize()
	if len(sealed) < 1+n || sealed[0] != 1 && sealed[0] != sealVersion {
		return nil, time.Time{}, time.Time{}, fmt.Errorf("not a sealed value")
	}
	header := 8
	if sealed[0] == sealVersion {
		header = 16
	}
	plain, err := s.aead.Open(nil, sealed[1:1+n], sealed[1+n:], []byte(key))
	if err != nil || len(plain) < header {
		return nil, time.Time{}, time.Time{}, fmt.Errorf("not a sealed value")
	}
	if header == 16 {
		written = time.Unix(0, int64(binary.BigEndian.Uint64(plain[8:16])))
	}
	return plain[header:], written, time.Unix(int64(binary.BigEndian.Uint64(plain)), 0), nil
}

// name is key's name in Redis when it would otherwise carry who it is
// about (a user's object and tenant IDs): an HMAC under a key derived from
// Config.Key, which no one without the Key can recompute from a directory
// of IDs.
func (s *Store) name(key string) string {
	mac := hmac.New(sha256.New, s.names)
	mac.Write([]byte(key))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}
