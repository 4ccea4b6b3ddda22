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

// The consent round trip of the chain in a real browser (headless
// Chromium), against a real redis-server and two web app processes: Grace
// signs in on one instance without granting the middle tier its
// permission on the sample API; on the other instance the chain's
// on-behalf-of request fails for consent, the middle tier answers with
// its claims challenge, the web app asks before it sends her to Entra, the
// fake tenant's consent page offers the middle tier's permission, she
// grants it, and the chain answers with the data. Screenshots go to
// SCREENSHOT_DIR when it is set.
func TestChainConsentInABrowser(t *testing.T) {
	browser := demotest.Browser(t)
	c := startChain(t)
	midPerm := c.mt.mid.ID + "|api:SecureData.Read"

	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser),
		chromedp.Flag("no-sandbox", true), // CI runs as root
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1100, 900),
	)...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(allocCtx)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	defer cancelTimeout()

	step := 0
	shot := func(name string) {
		dir := os.Getenv("SCREENSHOT_DIR")
		if dir == "" {
			return
		}
		step++
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, fmt.Sprintf("chain-%02d-%s.png", step, name)), png, 0o644)
		}
		if err != nil {
			t.Errorf("screenshot %s: %v", name, err)
		}
	}
	run := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			loc, _ := chromedp.Run(ctx, chromedp.Location())
			t.Fatalf("%s (at %s): %v", what, loc, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		run("wait for "+sel, chromedp.WaitVisible(chromedp.CSS(sel)))
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("reading %s: %v", sel, err)
		}
		return s
	}
	click := func(sel string) chromedp.Action[chromedp.Void] { return chromedp.Click(chromedp.CSS(sel)) }
	visible := func(sel string) chromedp.Action[chromedp.Void] { return chromedp.WaitVisible(chromedp.CSS(sel)) }
	permission := func(scope string) string { return `input[name="scope"][value="` + scope + `"]` }

	run("open instance a", chromedp.Navigate(c.a.url()), click("#sign-in"), visible("#user-1"))
	run("choose Grace", click("#user-1"), visible(permission(midPerm)))
	run("untick the middle tier's permission", click(permission(midPerm)))
	shot("consent-without-the-middle-tier")
	run("accept", click("#accept"))
	if got := text("#profile"); got != "Hello, Grace Hopper" {
		t.Fatalf("profile heading %q", got)
	}

	run("the chain from instance b", chromedp.Navigate(c.b.url()+"/chain"), visible("#continue-step-up"))
	if got := text("#continue-step-up"); got != "Review the permissions" {
		t.Errorf("the challenge's button %q", got)
	}
	shot("chain-challenge")
	run("review the permissions", click("#continue-step-up"), visible(permission(midPerm)))
	shot("consent-for-the-middle-tier")
	run("grant it", click("#accept"))
	if got := text("#api-status"); got != "200" {
		t.Errorf("the chain after consenting: %q", got)
	}
	if got := text("#api-body"); !strings.Contains(got, "Hello Grace Hopper, this is protected data.") || !strings.Contains(got, "grace@contoso.example") {
		t.Errorf("the chain's answer %q", got)
	}
	shot("chain-data")
}
