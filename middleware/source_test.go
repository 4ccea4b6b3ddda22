package middleware_test

import (
	"context"
	"errors"
	"net/http"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/entragate/entragate/middleware"
	"github.com/entragate/entragate/middleware/entratest"
)

// fast makes key refreshes as quick as the configuration floors allow.
func fast(c *middleware.Config) {
	c.MinLoadInterval = time.Second
	c.FetchTimeout = 300 * time.Millisecond
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < within {
		if cond() {
			return time.Since(start)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: not within %v", what, within)
	return 0
}

func TestStartsWhileEntraIsDownAndRecovers(t *testing.T) {
	for _, fault := range []entratest.Fault{entratest.Unavailable, entratest.ServerError, entratest.Garbage, entratest.Huge, entratest.EmptyKeySet} {
		t.Run(fault.String(), func(t *testing.T) {
			tenant := entratest.NewTenant(t)
			endpoints := entratest.All
			if fault == entratest.EmptyKeySet {
				endpoints = entratest.Keys
			}
			tenant.Server().SetFault(endpoints, fault)
			start := time.Now()
			a := newAuth(t, tenant, fast)
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("New took %v with the provider down", d)
			}
			if a.Ready() {
				t.Fatal("Ready with no keys loaded")
			}
			srv := protectedServer(t, a)
			tok := tenant.AccessToken()

			r := get(t, srv.URL, "Bearer "+tok)
			if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" || r.body["error"] != "temporarily_unavailable" {
				t.Fatalf("with no keys: status %d, Retry-After %q, body %v; want 503 with Retry-After", r.status, r.header.Get("Retry-After"), r.body)
			}
			if _, err := a.Validate(t.Context(), tok); !errors.Is(err, middleware.ErrKeysUnavailable) {
				t.Errorf("Validate with no keys: %v, want ErrKeysUnavailable", err)
			}
			// Requests that are wrong whatever the keys still get their 4xx.
			if r := get(t, srv.URL); r.status != http.StatusUnauthorized {
				t.Errorf("no token while keys are down: %d, want 401", r.status)
			}
			if r := get(t, srv.URL, "Bearer "+tenant.AccessToken(entratest.Expired())); r.status != http.StatusUnauthorized {
				t.Errorf("expired token while keys are down: %d, want 401", r.status)
			}

			tenant.Server().SetFault(entratest.All, entratest.NoFault)
			took := eventually(t, 5*time.Second, "recovery after the provider returns", func() bool {
				return get(t, srv.URL, "Bearer "+tok).status == http.StatusOK
			})
			t.Logf("recovered %v after the provider returned", took)
		})
	}
}

func TestKnownKeysKeepWorkingDuringAnOutage(t *testing.T) {
	tenant := entratest.NewTenant(t)
	a := newAuth(t, tenant, fast, func(c *middleware.Config) { c.KeyRefreshInterval = time.Second })
	tok := tenant.AccessToken()
	if _, err := a.Validate(t.Context(), tok); err != nil {
		t.Fatal(err)
	}
	for _, fault := range []entratest.Fault{entratest.Unavailable, entratest.Garbage, entratest.Huge, entratest.EmptyKeySet, entratest.Hang} {
		tenant.Server().SetFault(entratest.All, fault)
		failures := a.Stats().Failures
		eventually(t, 5*time.Second, "a failed periodic refresh", func() bool { return a.Stats().Failures > failures })
		if _, err := a.Validate(t.Context(), tok); err != nil {
			t.Errorf("%v: known key refused: %v", fault, err)
		}
	}
	tenant.Server().SetFault(entratest.All, entratest.NoFault)
}

func TestHangingProviderAnswersInBoundedTime(t *testing.T) {
	tenant := entratest.NewTenant(t)
	tenant.Server().SetFault(entratest.All, entratest.Hang)
	start := time.Now()
	a := newAuth(t, tenant, fast)
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Errorf("New took %v against a hanging provider with FetchTimeout 300ms", d)
	}
	srv := protectedServer(t, a)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			start := time.Now()
			r := get(t, srv.URL, "Bearer "+tenant.AccessToken())
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("request took %v", d)
			}
			if r.status != http.StatusServiceUnavailable {
				t.Errorf("status %d, want 503", r.status)
			}
		})
	}
	wg.Wait()
}

func TestSlowMetadataIsWaitedFor(t *testing.T) {
	tenant := entratest.NewTenant(t)
	tenant.Server().SetDelay(entratest.Metadata, 150*time.Millisecond)
	a := newAuth(t, tenant, func(c *middleware.Config) { c.FetchTimeout = 2 * time.Second })
	if !a.Ready() {
		t.Fatal("New returned before a slow but working provider answered")
	}
	if _, err := a.Validate(t.Context(), tenant.AccessToken()); err != nil {
		t.Error(err)
	}
}

func TestKeyRotation(t *testing.T) {
	tenant := entratest.NewTenant(t)
	s := tenant.Server()
	a := newAuth(t, tenant, fast)
	old := tenant.AccessToken()
	if _, err := a.Validate(t.Context(), old); err != nil {
		t.Fatal(err)
	}

	s.RotateKey()
	rotated := tenant.AccessToken()
	took := eventually(t, 3*time.Second, "token signed with the new key accepted", func() bool {
		_, err := a.Validate(t.Context(), rotated)
		return err == nil
	})
	t.Logf("new key accepted after %v", took)
	if _, err := a.Validate(t.Context(), old); err != nil {
		t.Errorf("old key still published but refused: %v", err)
	}

	s.RetireKey(s.PublishedKeys()[0])
	// A retired key is dropped at the next refresh; a token naming an unknown
	// kid triggers one.
	time.Sleep(1100 * time.Millisecond)
	_, _ = a.Validate(t.Context(), tenant.AccessToken(entratest.SignedWith(s.NewKey())))
	eventually(t, 3*time.Second, "retired key refused", func() bool {
		_, err := a.Validate(t.Context(), old)
		return errors.Is(err, middleware.ErrUnknownSigningKey)
	})
	if _, err := a.Validate(t.Context(), rotated); err != nil {
		t.Errorf("current key refused after retiring the old one: %v", err)
	}
}

// TestUnknownKidFloodThenRotation checks both halves of the refresh policy:
// a flood of random key IDs costs at most one key-set fetch per interval,
// and a key published right after it is accepted within about an interval.
func TestUnknownKidFloodThenRotation(t *testing.T) {
	tenant := entratest.NewTenant(t)
	s := tenant.Server()
	const interval = time.Second
	a := newAuth(t, tenant, func(c *middleware.Config) { c.MinLoadInterval = interval })
	srv := protectedServer(t, a)
	s.ResetCounts()

	foreign := s.NewKey()
	start := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	for w := range 8 {
		wg.Go(func() {
			for i := range 50 {
				tok := tenant.AccessToken(entratest.SignedWith(foreign), entratest.Header("kid", "flood-"+strconv.Itoa(w)+"-"+strconv.Itoa(i)))
				r := get(t, srv.URL, "Bearer "+tok)
				mu.Lock()
				statuses[r.status]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	flood := time.Since(start)
	if statuses[http.StatusUnauthorized] != 400 {
		t.Errorf("flood answers %v, want 400 × 401", statuses)
	}
	// Each refresh reads the v2 and the v1 key set.
	maxRounds := int64(flood/interval) + 2
	if n := s.Requests(entratest.Keys); n > 2*maxRounds {
		t.Errorf("400 unknown kids over %v caused %d key-set fetches, want at most %d", flood, n, 2*maxRounds)
	}
	t.Logf("400 unknown kids over %v: %d key-set fetches", flood, s.Requests(entratest.Keys))

	s.RotateKey()
	tok := tenant.AccessToken()
	// Generous for loaded CI machines; keyfunc's default would take minutes.
	took := eventually(t, 10*interval, "new key accepted right after the flood", func() bool {
		return get(t, srv.URL, "Bearer "+tok).status == http.StatusOK
	})
	t.Logf("new key accepted %v after publication", took)
}

func TestCloseStopsEveryGoroutine(t *testing.T) {
	tenant := entratest.NewTenant(t)
	before := runtime.NumGoroutine()
	for range 5 {
		a, err := middleware.New(context.Background(), tenant.Config())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.Validate(t.Context(), tenant.AccessToken()); err != nil {
			t.Fatal(err)
		}
		a.Close()
		a.Close() // idempotent
		if _, err := a.Validate(t.Context(), tenant.AccessToken()); !errors.Is(err, middleware.ErrClosed) {
			t.Errorf("Validate after Close: %v, want ErrClosed", err)
		}
	}
	eventually(t, 3*time.Second, "goroutines back to the baseline", func() bool {
		return runtime.NumGoroutine() <= before
	})
	var b strings.Builder
	_ = pprof.Lookup("goroutine").WriteTo(&b, 1)
	if strings.Contains(b.String(), "entragate/middleware.") {
		t.Errorf("a middleware goroutine outlived Close:\n%s", b.String())
	}
}

// A token signed with a key published during an outage cannot be checked:
// it must get 503 (retry later), not 401 (your token is bad), and be
// accepted once the provider answers again.
func TestNewKeyDuringAnOutageIsUnavailableNotInvalid(t *testing.T) {
	tenant := entratest.NewTenant(t)
	s := tenant.Server()
	a := newAuth(t, tenant, fast)
	if _, err := a.Validate(t.Context(), tenant.AccessToken()); err != nil {
		t.Fatal(err)
	}
	s.SetFault(entratest.All, entratest.Unavailable)
	s.RotateKey()
	tok := tenant.AccessToken()
	time.Sleep(1100 * time.Millisecond) // past MinLoadInterval
	for i := range 3 {                  // a fresh attempt, then answers from its failure
		if _, err := a.Validate(t.Context(), tok); !errors.Is(err, middleware.ErrKeysUnavailable) {
			t.Fatalf("attempt %d during the outage: %v, want ErrKeysUnavailable", i, err)
		}
	}
	s.SetFault(entratest.All, entratest.NoFault)
	eventually(t, 3*time.Second, "new key accepted after the outage", func() bool {
		_, err := a.Validate(t.Context(), tok)
		return err == nil
	})
}
