package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/entragate/entragate/examples/internal/demotest"
)

// The tutorial's whole flow in a real browser (headless Chromium): sign
// in on the fake tenant's page, land on the profile, call the API, see the
// protected data; step up for the confidential data (the API's claims
// challenge, the step-up page, the data); refuse SecureData.Read and see
// the API's 403 explained; sign out. A screenshot of each page is saved under SCREENSHOT_DIR
// (default: a directory the test names in its log).
//
// Without a browser the test skips, saying so; CI installs Debian's
// chromium and sets ENTRAGATE_E2E_REQUIRED=1, which turns that skip into a
// failure.
func TestBrowserSignInFlow(t *testing.T) {
	browser := demotest.Browser(t)
	shots := os.Getenv("SCREENSHOT_DIR")
	if shots == "" {
		shots = filepath.Join(os.TempDir(), "entragate-webapp-screenshots")
	}
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots: %s", shots)

	s := startOffline(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser),
		chromedp.Flag("no-sandbox", true), // CI runs as root
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1100, 900),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()

	step := 0
	shot := func(ctx context.Context, name string) {
		t.Helper()
		step++
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // quality 100: PNG
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		path := filepath.Join(shots, fmt.Sprintf("%02d-%s.png", step, name))
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	text := func(ctx context.Context, sel string) string {
		t.Helper()
		if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(sel))); err != nil {
			loc, _ := chromedp.Run(ctx, chromedp.Location())
			t.Fatalf("waiting for %s at %s: %v", sel, loc, err)
		}
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("reading %s: %v", sel, err)
		}
		return s
	}
	run := func(ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			loc, _ := chromedp.Run(ctx, chromedp.Location())
			t.Fatalf("%s (at %s): %v", what, loc, err)
		}
	}
	click := func(sel string) chromedp.Action[chromedp.Void] { return chromedp.Click(chromedp.CSS(sel)) }
	visible := func(sel string) chromedp.Action[chromedp.Void] { return chromedp.WaitVisible(chromedp.CSS(sel)) }

	// Ada signs in, grants every permission, sees her profile and the data.
	ctx, cancel := chromedp.NewContext(allocCtx)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	defer cancelTimeout()
	run(ctx, "open the app", chromedp.Navigate(s.URL))
	shot(ctx, "home")
	run(ctx, "sign in", click("#sign-in"), visible("#user-0"))
	shot(ctx, "fake-tenant-sign-in")
	run(ctx, "choose Ada", click("#user-0"), visible("#accept"))
	shot(ctx, "consent")
	run(ctx, "accept", click("#accept"))
	if got := text(ctx, "#profile"); got != "Hello, Ada Lovelace" {
		t.Errorf("profile heading %q", got)
	}
	if got := text(ctx, "#graph-displayName"); got != "Ada Lovelace" {
		t.Errorf("Graph /me displayName %q", got)
	}
	if got := text(ctx, "#claim-preferred_username"); got != "ada@contoso.example" {
		t.Errorf("ID token preferred_username %q", got)
	}
	shot(ctx, "profile")
	run(ctx, "call the API", click("#call-api"))
	if got := text(ctx, "#api-status"); got != "200" {
		t.Errorf("API status %q", got)
	}
	if got := text(ctx, "#api-body"); !strings.Contains(got, "Hello Ada Lovelace, this is protected data.") {
		t.Errorf("API answer %q", got)
	}
	shot(ctx, "protected-data")

	// The confidential data needs authentication context c1: the API's
	// claims challenge sends Ada to the fake tenant's step-up page, and
	// back with a token that passes.
	run(ctx, "open the confidential data", click("#nav-confidential"), visible("#continue-step-up"))
	shot(ctx, "step-up-asked")
	run(ctx, "confirm the step-up", click("#continue-step-up"), visible("#verify"))
	if got := text(ctx, "#contexts"); got != "c1" {
		t.Errorf("step-up page names the contexts %q, want c1", got)
	}
	shot(ctx, "step-up")
	run(ctx, "verify", click("#verify"))
	if got := text(ctx, "#api-status"); got != "200" {
		t.Errorf("confidential API status %q after the step-up", got)
	}
	if got := text(ctx, "#api-explanation"); !strings.Contains(got, "signed in again for this") {
		t.Errorf("explanation after the step-up %q", got)
	}
	if got := text(ctx, "#api-body"); !strings.Contains(got, "this is confidential data") || !strings.Contains(got, `"auth_context": "c1"`) {
		t.Errorf("confidential answer %q", got)
	}
	shot(ctx, "confidential-data")
	html, err := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("html")))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(html, "eyJ") {
		t.Error("a token appears in the page")
	}
	// On a phone's screen: nothing wider than it, the navigation's links
	// and button on one line.
	run(ctx, "a 390 px wide screen", chromedp.EmulateViewport(390, 844))
	for _, page := range []string{"/profile", "/call-api", "/confidential"} {
		run(ctx, "open "+page, chromedp.Navigate(s.URL+page), visible("#sign-out"))
		if w := evaluate[int](t, ctx, `document.documentElement.scrollWidth`); w > 390 {
			t.Errorf("%s is %d px wide on a 390 px screen", page, w)
		}
		// The navigation may wrap on a narrow screen; on each line, links
		// and button share their middle.
		spread := evaluate[float64](t, ctx, `(() => {
			const rs = [...document.querySelectorAll("nav a, nav button")].map(e => e.getBoundingClientRect());
			let worst = 0;
			for (const a of rs) for (const b of rs) {
				if (a.top < b.bottom && b.top < a.bottom) worst = Math.max(worst, Math.abs((a.top + a.height / 2) - (b.top + b.height / 2)));
			}
			return worst })()`)
		if spread > 2 {
			t.Errorf("%s: the navigation's links and button on one line are not aligned (%.1f px apart)", page, spread)
		}
		shot(ctx, "phone"+strings.ReplaceAll(page, "/", "-"))
	}
	run(ctx, "a desktop screen again", chromedp.EmulateViewport(1100, 900))

	run(ctx, "sign out", click("#sign-out"), visible("#signed-out"))
	shot(ctx, "signed-out")
	run(ctx, "profile after sign-out", chromedp.Navigate(s.URL+"/profile"), visible("#sign-in"))

	// Grace, in a new tab of the same browser (Ada signed out of the app
	// and of the tenant), refuses SecureData.Read: she is signed in, and
	// the API's 403 is explained.
	ctx2, cancel2 := chromedp.NewContext(ctx)
	defer cancel2()
	ctx2, cancelTimeout2 := context.WithTimeout(ctx2, 90*time.Second)
	defer cancelTimeout2()
	run(ctx2, "open the app", chromedp.Navigate(s.URL), click("#sign-in"), visible("#user-1"))
	run(ctx2, "choose Grace", click("#user-1"), visible("#accept"))
	readBox := `input[name="scope"][value="api:SecureData.Read"]`
	run(ctx2, "untick SecureData.Read", click(readBox))
	shot(ctx2, "consent-without-securedata-read")
	run(ctx2, "accept", click("#accept"))
	if got := text(ctx2, "#profile"); got != "Hello, Grace Hopper" {
		t.Errorf("profile heading %q", got)
	}
	run(ctx2, "call the API", click("#call-api"))
	if got := text(ctx2, "#api-status"); got != "403" {
		t.Errorf("API status %q, want 403", got)
	}
	if got := text(ctx2, "#api-explanation"); !strings.Contains(got, "does not carry the SecureData.Read permission") {
		t.Errorf("explanation %q", got)
	}
	shot(ctx2, "api-403-explained")
	run(ctx2, "sign Grace out", click("#sign-out"), visible("#signed-out"))
	shot(ctx2, "signed-out-confirmed")

	// Alan, unticking the permission to read his profile: the app explains
	// why it cannot sign him in, and offers to try again.
	run(ctx2, "sign in again", click("#sign-in"), visible("#user-2"))
	run(ctx2, "choose Alan", click("#user-2"), visible("#accept"))
	run(ctx2, "untick User.Read", click(`input[name="scope"][value="graph:User.Read"]`))
	run(ctx2, "accept", click("#accept"))
	if got := text(ctx2, "#error"); !strings.Contains(got, "You did not grant this app the permission to read your profile") {
		t.Errorf("sign-in without User.Read: %q", got)
	}
	if got := text(ctx2, "#sign-in-again"); got != "Sign in again" {
		t.Errorf("sign-in link %q", got)
	}
	shot(ctx2, "sign-in-without-user-read-explained")
}

// evaluate runs a JavaScript expression in the page.
func evaluate[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}
