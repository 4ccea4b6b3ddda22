package middleware_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/entragate/entragate/middleware"
	"github.com/entragate/entragate/middleware/entratest"
)

// A TenantAdmission.Check that ignores its context holds no request past
// CheckTimeout, and the calls it leaves running are bounded.
func TestHungAdmissionCheckHoldsNoRequest(t *testing.T) {
	m := newMultiTenant(t)
	release := make(chan struct{})
	var calls, running, most atomic.Int32
	var gotCtx sync.Once
	var sawDeadline, sawValue atomic.Bool
	type traceKey struct{}
	check := func(ctx context.Context, tid string) (bool, error) {
		calls.Add(1)
		n := running.Add(1)
		defer running.Add(-1)
		for old := most.Load(); n > old && !most.CompareAndSwap(old, n); old = most.Load() {
		}
		gotCtx.Do(func() {
			_, ok := ctx.Deadline()
			sawDeadline.Store(ok)
			sawValue.Store(ctx.Value(traceKey{}) == "request 1")
		})
		<-release // ignores ctx
		return true, nil
	}
	const timeout = 200 * time.Millisecond
	a := m.auth(t, middleware.Organizations, middleware.TenantAdmission{Check: check, CheckTimeout: timeout})

	// Many requests of one tenant share one hung call, and all get 503 by
	// the deadline.
	tok := m.allowed.AccessToken()
	ctx := context.WithValue(t.Context(), traceKey{}, "request 1")
	var wg sync.WaitGroup
	start := time.Now()
	for range 20 {
		wg.Go(func() {
			_, err := a.Validate(ctx, tok)
			var e *middleware.Error
			if !errors.As(err, &e) || !errors.Is(err, middleware.ErrTenantCheckUnavailable) || e.RetryAfterSeconds < 1 {
				t.Errorf("request waiting for a hung check: %v, want ErrTenantCheckUnavailable with Retry-After", err)
			}
		})
	}
	wg.Wait()
	if d := time.Since(start); d > timeout+time.Second {
		t.Errorf("requests waiting for a hung check were answered after %v, want about %v", d, timeout)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("%d calls for one tenant, want 1", n)
	}
	if !sawDeadline.Load() || !sawValue.Load() {
		t.Errorf("Check's context: deadline %v, request value %v; want both", sawDeadline.Load(), sawValue.Load())
	}

	// Tenant after tenant, the calls left running stop at the bound.
	srv := m.srv
	var tokens []string
	for range 80 {
		tokens = append(tokens, srv.NewTenant(entratest.WithClientID(m.clientID)).AccessToken())
	}
	for _, tok := range tokens {
		wg.Go(func() {
			if _, err := a.Validate(t.Context(), tok); !errors.Is(err, middleware.ErrTenantCheckUnavailable) {
				t.Errorf("tenant with a hung check: %v, want ErrTenantCheckUnavailable", err)
			}
		})
	}
	wg.Wait()
	if n := most.Load(); n > 64 {
		t.Errorf("%d calls of a hung Check ran at once, want at most 64", n)
	}
	// Past the bound, a new tenant is answered at once, saying why.
	start = time.Now()
	_, err := a.Validate(t.Context(), srv.NewTenant(entratest.WithClientID(m.clientID)).AccessToken())
	if !errors.Is(err, middleware.ErrTenantCheckUnavailable) || !strings.Contains(err.Error(), "too many TenantAdmission.Check calls are running") {
		t.Errorf("tenant beyond the bound: %v, want ErrTenantCheckUnavailable naming the running calls", err)
	}
	if d := time.Since(start); d > timeout/2+100*time.Millisecond {
		t.Errorf("tenant beyond the bound answered after %v, want at once", d)
	}

	// Once the hung calls return, Check is asked again.
	close(release)
	eventually(t, 5*time.Second, "a tenant admitted once the hung calls returned", func() bool {
		_, err := a.Validate(t.Context(), tokens[0])
		return err == nil
	})
}

// A Check serves every request waiting for it: the one that started it
// going away does not cancel it (the others get the answer); a request
// that goes away stops waiting at once; Close cancels the running calls.
func TestAdmissionCheckOutlivesItsFirstRequest(t *testing.T) {
	m := newMultiTenant(t)
	started := make(chan struct{}, 10)
	cancelled := make(chan struct{}, 10)
	hold := make(chan struct{})
	check := func(ctx context.Context, tid string) (bool, error) {
		started <- struct{}{}
		select {
		case <-hold:
			return true, nil
		case <-ctx.Done():
			cancelled <- struct{}{}
			return false, ctx.Err()
		}
	}
	a := m.auth(t, middleware.Organizations, middleware.TenantAdmission{Check: check, CheckTimeout: 5 * time.Second})
	tok := m.allowed.AccessToken()

	first, cancel := context.WithCancel(t.Context())
	firstDone := make(chan error, 1)
	go func() { _, err := a.Validate(first, tok); firstDone <- err }()
	<-started
	second := make(chan error, 1)
	go func() { _, err := a.Validate(t.Context(), tok); second <- err }()
	cancel()
	select {
	case err := <-firstDone:
		if !errors.Is(err, middleware.ErrTenantCheckUnavailable) {
			t.Errorf("the request that went away: %v", err)
		}
	case <-time.After(time.Second):
		t.Fatal("a request that went away kept waiting for the check")
	}
	time.Sleep(50 * time.Millisecond)
	close(hold)
	if err := <-second; err != nil {
		t.Errorf("the request still waiting, once the check answered: %v", err)
	}
	select {
	case <-cancelled:
		t.Error("the first request's cancellation cancelled the check")
	default:
	}

	// Another tenant's call, running when the Authenticator closes, is
	// cancelled by Close.
	hold = make(chan struct{})
	go func() { _, _ = a.Validate(t.Context(), m.other.AccessToken()) }()
	<-started
	a.Close()
	select {
	case <-cancelled:
	case <-time.After(time.Second):
		t.Error("Close left a running check uncancelled")
	}
}
