package middleware

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// lookups caches the answers of a slow call the API's own code makes on a
// verified token's behalf (TenantAdmission.Check for a tenant, a
// GroupResolver for a user), so that a busy API makes one call per key and
// TTL, not one per request:
//   - concurrent requests for one key share one call;
//   - a call answers by its deadline whether or not the function returns,
//     so a hung database or Graph holds no request past it;
//   - at most maxRunning calls run at once, deadline or not: beyond that,
//     keys not already answered fail at once;
//   - failures are remembered for errTTL(err), so an outage is not
//     hammered by every request;
//   - at most maxEntries answers are kept: expired ones go first, then any
//     finished one.
type lookups[V any] struct {
	what       string // the function, for errors: "TenantAdmission.Check"
	call       func(ctx context.Context, key string) (V, error)
	ttl        time.Duration
	errTTL     func(error) time.Duration
	timeout    time.Duration
	maxEntries int
	maxRunning int32
	now        func() time.Time
	closing    context.Context // Close of the owner: running calls are cancelled
	// observe, if set, is told of each call's end (its deadline, if the
	// function did not return by then).
	observe func(parent context.Context, key string, v V, err error, start time.Time, d time.Duration)
	logger  *slog.Logger // an observer's panics
	// group, if set, names a key's group (a tenant), of which at most
	// maxPerGroup calls run at once.
	group       func(key string) string
	maxPerGroup int

	mu        sync.Mutex
	answers   map[string]*answer[V]
	runningBy map[string]int // by group
	running   atomic.Int32   // calls not returned, deadline or not
	// hits counts requests answered by a kept or running call, misses the
	// calls started.
	hits, misses atomic.Int64
}

// answer is one call's result, or the call producing it.
type answer[V any] struct {
	done    chan struct{}
	v       V
	err     error
	expires time.Time
}

// get returns key's answer and until when it holds, calling the function
// if no live answer is cached. It waits for a running call until the
// call's deadline or ctx ends.
func (l *lookups[V]) get(ctx context.Context, key string) (V, time.Time, error) {
	ans := l.answer(ctx, key)
	select {
	case <-ans.done:
		return ans.v, ans.expires, ans.err
	case <-ctx.Done():
		var zero V
		return zero, time.Time{}, ctx.Err()
	}
}

// answer returns the cached or running call for key, starting one if
// needed.
func (l *lookups[V]) answer(ctx context.Context, key string) *answer[V] {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if ans, ok := l.answers[key]; ok {
		select {
		case <-ans.done:
			if now.Before(ans.expires) {
				l.hits.Add(1)
				return ans
			}
		default:
			l.hits.Add(1)
			return ans // still running
		}
	}
	if len(l.answers) >= l.maxEntries {
		l.evictLocked(now)
	}
	ans := &answer[V]{done: make(chan struct{})}
	l.answers[key] = ans
	l.misses.Add(1)
	go l.run(ctx, key, ans)
	return ans
}

// run calls the function for key and answers by the deadline, whether or
// not it returns. The call serves every request waiting for it, so it
// keeps the values of the request that started it (a trace, a logger)
// but not its cancellation.
func (l *lookups[V]) run(parent context.Context, key string, ans *answer[V]) {
	defer close(ans.done)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), l.timeout)
	defer cancel()
	stop := context.AfterFunc(l.closing, cancel)
	defer stop()

	type result struct {
		v   V
		err error
	}
	release, ok := l.claimGroup(key)
	switch {
	case !ok:
		ans.err = fmt.Errorf("too many %s calls are running for %s, some perhaps past their deadline", l.what, l.group(key))
	case l.running.Add(1) > l.maxRunning:
		l.running.Add(-1)
		release()
		ans.err = fmt.Errorf("too many %s calls are running, some perhaps past their deadline", l.what)
	default:
		results := make(chan result, 1)
		go func() {
			var r result
			defer func() {
				if p := recover(); p != nil {
					r = result{err: fmt.Errorf("%s panicked: %v", l.what, p)}
				}
				l.running.Add(-1)
				release()
				results <- r
			}()
			r.v, r.err = l.call(ctx, key)
		}()
		start := time.Now()
		select {
		case r := <-results:
			ans.v, ans.err = r.v, r.err
		case <-ctx.Done():
			// The call goes on, counted in running, until it returns.
			ans.err = fmt.Errorf("%s did not answer within %v: %w", l.what, l.timeout, ctx.Err())
		}
		if l.observe != nil {
			d := time.Since(start)
			observeSafely(l.logger, "Admission", func() { l.observe(parent, key, ans.v, ans.err, start, d) })
		}
	}
	ttl := l.ttl
	if ans.err != nil {
		ttl = l.errTTL(ans.err)
	}
	ans.expires = l.now().Add(ttl)
}

// claimGroup counts a call for key's group, if under its limit, and
// returns the release of that count.
func (l *lookups[V]) claimGroup(key string) (release func(), ok bool) {
	if l.group == nil {
		return func() {}, true
	}
	g := l.group(key)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.runningBy[g] >= l.maxPerGroup {
		return nil, false
	}
	if l.runningBy == nil {
		l.runningBy = map[string]int{}
	}
	l.runningBy[g]++
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.runningBy[g]--; l.runningBy[g] <= 0 {
			delete(l.runningBy, g)
		}
	}, true
}

// forget drops key's answer, if it is not running.
func (l *lookups[V]) forget(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if ans, ok := l.answers[key]; ok {
		select {
		case <-ans.done:
			delete(l.answers, key)
		default:
		}
	}
}

// evictLocked makes room: expired answers first, then any finished one.
func (l *lookups[V]) evictLocked(now time.Time) {
	for key, ans := range l.answers {
		select {
		case <-ans.done:
			if !now.Before(ans.expires) {
				delete(l.answers, key)
			}
		default:
		}
	}
	for key, ans := range l.answers {
		if len(l.answers) < l.maxEntries {
			return
		}
		select {
		case <-ans.done:
			delete(l.answers, key)
		default:
		}
	}
}

// size is the number of answers kept, running calls included.
func (l *lookups[V]) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.answers)
}
