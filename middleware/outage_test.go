package middleware_test

import (
	"bytes"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/entragate/entragate/middleware"
	"github.com/entragate/entragate/middleware/entratest"
)

// sourceOf returns the Stats of the source serving token version v.
func sourceOf(t *testing.T, st middleware.Stats, v string) middleware.SourceStats {
	t.Helper()
	for _, s := range st.Sources {
		if s.Version == v {
			return s
		}
	}
	t.Fatalf("no source for version %s in %+v", v, st.Sources)
	return middleware.SourceStats{}
}

// With both versions accepted, the v1.0 document failing must not stop
// v2.0 tokens, from start-up or later. The v2.0 document failing stops
// both: the v2.0 key set is where Entra says which tenant a key may sign
// for, v1.0 tokens included (TestV1TokensWaitForTheV2KeySet).
func TestOutageOfOneVersionSparesTheOther(t *testing.T) {
	tests := []struct {
		name    string
		down    entratest.Endpoint
		downVer string
	}{
		{"v1 metadata down", entratest.MetadataV1, "1.0"},
		{"v1 key set down", entratest.KeysV1, "1.0"},
		{"v2 metadata down", entratest.MetadataV2, "2.0"},
		{"v2 key set down", entratest.KeysV2, "2.0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tenant := entratest.NewTenant(t)
			tenant.Server().SetFault(tc.down, entratest.Unavailable)
			a := newAuth(t, tenant, fast)
			v1, v2 := tenant.AccessToken(entratest.V1()), tenant.AccessToken()
			up, down := []string{v2}, []string{v1}
			upVer := "2.0"
			if tc.downVer == "2.0" {
				up, down, upVer = nil, []string{v1, v2}, "1.0"
			}
			for range 3 {
				for _, tok := range up {
					start := time.Now()
					if _, err := a.Validate(t.Context(), tok); err != nil {
						t.Fatalf("token of the working version: %v", err)
					}
					if d := time.Since(start); d > time.Second {
						t.Errorf("token of the working version took %v", d)
					}
				}
				for _, tok := range down {
					if _, err := a.Validate(t.Context(), tok); !errors.Is(err, middleware.ErrKeysUnavailable) {
						t.Fatalf("token that depends on the failing document: %v, want ErrKeysUnavailable", err)
					}
				}
			}
			if a.Ready() {
				t.Error("Ready with one version's keys missing")
			}
			st := a.Stats()
			failing, working := sourceOf(t, st, tc.downVer), sourceOf(t, st, upVer)
			if failing.Ready || failing.LastError == nil || failing.LastErrorAt.IsZero() || !strings.Contains(failing.LastError.Error(), "503") {
				t.Errorf("failing source stats %+v: want not ready, with the last error (503) and its time", failing)
			}
			if !working.Ready || working.LastError != nil || working.LastSuccess.IsZero() {
				t.Errorf("working source stats %+v: want ready with a last success", working)
			}
			if st.LastError == nil || st.KeysLoaded {
				t.Errorf("Stats: LastError %v, KeysLoaded %v; want the failing source's error, not loaded", st.LastError, st.KeysLoaded)
			}

			tenant.Server().SetFault(entratest.All, entratest.NoFault)
			eventually(t, 5*time.Second, "failing version recovers", func() bool {
				for _, tok := range down {
					if _, err := a.Validate(t.Context(), tok); err != nil {
						return false
					}
				}
				return true
			})
			if !a.Ready() {
				t.Error("not Ready after recovery")
			}
		})
	}
}

// FetchTimeout bounds each HTTP request, not a whole load of two requests.
func TestFetchTimeoutBoundsEachRequest(t *testing.T) {
	tenant := entratest.NewTenant(t)
	tenant.Server().SetDelay(entratest.All, 600*time.Millisecond)
	a := newAuth(t, tenant, func(c *middleware.Config) { c.FetchTimeout = time.Second })
	if !a.Ready() {
		t.Fatalf("keys not loaded with every endpoint answering in 600ms and FetchTimeout 1s: %+v", a.Stats())
	}
	if _, err := a.Validate(t.Context(), tenant.AccessToken()); err != nil {
		t.Error(err)
	}
}

// Our own limits never call a genuine token invalid: when the waiting room
// for a running key load is full, the answer is 503 with Retry-After.
func TestFullWaitingRoomIsUnavailableNotInvalid(t *testing.T) {
	tenant := entratest.NewTenant(t)
	s := tenant.Server()
	a := newAuth(t, tenant, fast, func(c *middleware.Config) { c.FetchTimeout = 3 * time.Second })
	if _, err := a.Validate(t.Context(), tenant.AccessToken()); err != nil {
		t.Fatal(err)
	}
	s.SetDelay(entratest.Keys, 800*time.Millisecond)
	s.RotateKey()
	tok := tenant.AccessToken()
	time.Sleep(1100 * time.Millisecond) // past MinLoadInterval: the next miss loads

	const n = 400
	var wg sync.WaitGroup
	var mu sync.Mutex
	outcomes := map[string]int{}
	for range n {
		wg.Go(func() {
			_, err := a.Validate(t.Context(), tok)
			key := "ok"
			var e *middleware.Error
			switch {
			case err == nil:
			case errors.As(err, &e) && e.Status == http.StatusServiceUnavailable && e.RetryAfterSeconds > 0:
				key = "503"
			default:
				key = err.Error()
			}
			mu.Lock()
			outcomes[key]++
			mu.Unlock()
		})
	}
	wg.Wait()
	// The waiting room holds 256: they get the new key; the others, 503.
	if outcomes["ok"]+outcomes["503"] != n || outcomes["ok"] == 0 || outcomes["ok"] > 256 {
		t.Errorf("%d concurrent genuine requests during a rotation: %v; want at most 256 200s and the rest 503s with Retry-After", n, outcomes)
	}
	t.Logf("outcomes: %v", outcomes)

	// A kid simply absent from a fresh key set is still invalid.
	s.SetDelay(entratest.Keys, 0)
	absent := tenant.AccessToken(entratest.SignedWith(s.NewKey()))
	if _, err := a.Validate(t.Context(), absent); !errors.Is(err, middleware.ErrUnknownSigningKey) {
		t.Errorf("unpublished key right after a load: %v, want ErrUnknownSigningKey", err)
	}
}

// Whatever asks for loads, each source starts at most one per
// MinLoadInterval: the total fetch rate is bounded.
func TestFetchRateIsBoundedWhateverTheTraffic(t *testing.T) {
	tenant := entratest.NewTenant(t)
	s := tenant.Server()
	a := newAuth(t, tenant, func(c *middleware.Config) {
		c.KeyRefreshInterval = time.Second
		c.MinLoadInterval = time.Second
		c.FetchTimeout = 200 * time.Millisecond
	})
	s.SetFault(entratest.Keys, entratest.Unavailable) // failing loads retry
	s.ResetCounts()
	start := time.Now()
	deadline := start.Add(3 * time.Second)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				_, _ = a.Validate(t.Context(), tenant.AccessToken(entratest.SignedWith(s.NewKey())))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	// Two sources, each at most one load (two requests) per second, plus
	// the load that may be running at the start.
	loads := int64(elapsed/time.Second) + 1
	if n := s.Requests(entratest.All); n > 2*2*loads {
		t.Errorf("%d requests to Entra in %v; want at most %d", n, elapsed, 2*2*loads)
	}
	t.Logf("%d requests to Entra in %v", s.Requests(entratest.All), elapsed)
}

// With no Logger, load failures still reach slog.Default at warning level,
// while refused requests stay silent.
func TestLoadFailuresAreLoggedByDefault(t *testing.T) {
	var buf lockedBuffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	defer slog.SetDefault(old)

	tenant := entratest.NewTenant(t)
	tenant.Server().SetFault(entratest.All, entratest.Unavailable)
	a := newAuth(t, tenant, fast)
	_, _ = a.Validate(t.Context(), tenant.AccessToken(entratest.Expired()))
	eventually(t, 3*time.Second, "a warning about the failed load", func() bool {
		return strings.Contains(buf.String(), "level=WARN") && strings.Contains(buf.String(), "cannot load Entra metadata or signing keys")
	})
	if strings.Contains(buf.String(), "request refused") {
		t.Errorf("a refused request was logged without a Logger:\n%s", buf.String())
	}
	st := a.Stats()
	if st.LastError == nil || st.LastErrorAt.IsZero() || st.Failures == 0 {
		t.Errorf("Stats: %+v, want the last load error and its time", st)
	}
}

// With a Logger, load failures go there instead.
func TestLoadFailuresGoToTheConfiguredLogger(t *testing.T) {
	var mine, def bytes.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&def, nil)))
	defer slog.SetDefault(old)
	var lb lockedBuffer
	tenant := entratest.NewTenant(t)
	tenant.Server().SetFault(entratest.All, entratest.Unavailable)
	newAuth(t, tenant, fast, func(c *middleware.Config) { c.Logger = slog.New(slog.NewTextHandler(&lb, nil)) })
	eventually(t, 3*time.Second, "a warning in the configured logger", func() bool {
		return strings.Contains(lb.String(), "cannot load Entra metadata")
	})
	if def.Len() != 0 || mine.Len() != 0 {
		t.Errorf("slog.Default received %q", def.String())
	}
}

// A failed load is retried by itself, with backoff (1 s, 2 s, ...), not
// only at the next hourly refresh or when traffic asks.
func TestFailedLoadsAreRetriedWithoutTraffic(t *testing.T) {
	tenant := entratest.NewTenant(t)
	s := tenant.Server()
	s.SetFault(entratest.Keys, entratest.Unavailable)
	newAuth(t, tenant, fast, func(c *middleware.Config) { c.Authorities[0] = c.Authorities[0].WithTokenVersions(middleware.TokenV2) })
	s.ResetCounts()
	time.Sleep(3500 * time.Millisecond)
	if n := s.Requests(entratest.KeysV2); n < 2 || n > 4 {
		t.Errorf("%d key-set retries in 3.5 s without traffic, want 2 to 4 (backoff from 1 s)", n)
	}
}
