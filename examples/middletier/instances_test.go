package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/entragate/entragate/middleware/entratest"
	"github.com/entragate/entragate/middleware/tokencache"
	"github.com/entragate/entragate/middleware/tokencache/redistest"
)

// webApp is an instance of examples/webapp, as its own process.
type webApp struct {
	bin, addr string
	env       []string
	cmd       *exec.Cmd
	log       *bytes.Buffer
}

func (w *webApp) start(t *testing.T) {
	t.Helper()
	w.log = &bytes.Buffer{}
	w.cmd = exec.Command(w.bin)
	w.cmd.Env = append(os.Environ(), append(w.env, "ADDR="+w.addr)...)
	w.cmd.Stdout, w.cmd.Stderr = w.log, w.log
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", w.addr, 100*time.Millisecond); err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("the web app did not listen on %s:\n%s", w.addr, w.log)
}

func (w *webApp) stop() {
	if w.cmd != nil {
		_ = w.cmd.Process.Signal(os.Interrupt)
		_ = w.cmd.Wait()
		w.cmd = nil
	}
}

func (w *webApp) url() string { return "http://" + w.addr }

// browser is a user's browser: cookies (shared by the instances on
// localhost, as a real browser's are), and the fake tenant's forms.
type browser struct {
	t      *testing.T
	client *http.Client
	mu     sync.Mutex // several requests of one user may run at once
	last   string
}

func newBrowser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, client: &http.Client{Jar: jar, CheckRedirect: func(_ *http.Request, via []*http.Request) error {
		if len(via) > 20 {
			return errors.New("a redirect loop")
		}
		return nil
	}}}
}

func (b *browser) do(method, u string, form url.Values) (int, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, u, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	b.mu.Lock()
	b.last = resp.Request.URL.String()
	b.mu.Unlock()
	return resp.StatusCode, string(out)
}

var (
	requestField = regexp.MustCompile(`name="request" value="([^"]+)"`)
	userField    = regexp.MustCompile(`name="user" value="([^"]+)"`)
	scopeField   = regexp.MustCompile(`name="scope" value="([^"]+)"`)
)

// consent answers the fake tenant's consent page, granting what keep
// allows.
func (b *browser) consent(body string, keep func(scope string) bool) (int, string) {
	b.t.Helper()
	if !strings.Contains(body, "Permissions requested") {
		b.t.Fatalf("expected the consent page at %s: %s", b.last, body)
	}
	form := url.Values{"request": {requestField.FindStringSubmatch(body)[1]}, "consent": {"accept"}}
	for _, m := range scopeField.FindAllStringSubmatch(body, -1) {
		if keep(m[1]) {
			form.Add("scope", m[1])
		}
	}
	return b.do(http.MethodPost, b.last, form)
}

// signIn signs user i in on the instance at base, granting what keep
// allows.
func (b *browser) signIn(base string, i int, keep func(string) bool) (int, string) {
	b.t.Helper()
	_, body := b.do(http.MethodGet, base+"/login", nil)
	users := userField.FindAllStringSubmatch(body, -1)
	if len(users) <= i {
		b.t.Fatalf("sign-in page at %s: %s", b.last, body)
	}
	status, body := b.do(http.MethodPost, b.last, url.Values{"request": {requestField.FindStringSubmatch(body)[1]}, "user": {users[i][1]}})
	if !strings.Contains(body, "Permissions requested") && strings.Contains(body, `id="profile"`) {
		return status, body // everything asked for was granted before
	}
	return b.consent(body, keep)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return "localhost:" + strings.TrimPrefix(ln.Addr().String(), "127.0.0.1:")
}

// The judged scenario, with a real redis-server and two web app
// processes: sign in on one instance, call the chain from the other; both
// restart and the user is still signed in, served from the shared caches
// without asking Entra again; Redis stops mid-session and nothing answers
// 500; a user who did not consent to what the middle tier does for them
// gets the middle tier's challenge back in the browser, consents, and the
// chain answers.
// chainStack is what the tests of several instances run: a real
// redis-server, the middle tier (in process, offline: the fake tenant and
// the sample API with it) and two web app processes sharing Redis.
type chainStack struct {
	redis *redistest.Server
	mt    *service
	a, b  *webApp
	env   []string // the web apps' environment
}

func startChain(t *testing.T) *chainStack {
	t.Helper()
	redisSrv := redistest.Start(t)
	key := make([]byte, 32)
	for _, v := range variables {
		t.Setenv(v, "")
	}
	cacheKey := base64.StdEncoding.EncodeToString(key)
	t.Setenv("REDIS_URL", redisSrv.URL)
	t.Setenv("TOKEN_CACHE_KEY", cacheKey)
	a := &webApp{addr: freeAddr(t)}
	b := &webApp{addr: freeAddr(t)}
	saved := webAppAddrs
	webAppAddrs = []string{a.addr, b.addr} // where the fake tenant may send users back
	t.Cleanup(func() { webAppAddrs = saved })
	var mtLog bytes.Buffer
	mt, err := start(context.Background(), slog.New(slog.NewTextHandler(&syncWriter{w: &mtLog}, nil)), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mt.Close)
	dir := t.TempDir()
	env, err := mt.webAppEnv(dir)
	if err != nil {
		t.Fatal(err)
	}
	env = append(env, "REDIS_URL="+redisSrv.URL, "API_SCOPES="+mt.offline.ReadScope+" "+mt.offline.BasicScope)
	for i, e := range env {
		env[i] = strings.ReplaceAll(e, "'", "") // the printed form quotes for a shell
	}

	bin := filepath.Join(dir, "webapp")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = "../webapp"
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the web app: %v\n%s", err, out)
	}
	// Registered before the instances' stops, so it runs after them (the
	// logs are complete, and no longer written to).
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("instance a:\n%s\ninstance b:\n%s\nmiddle tier:\n%s", a.log, b.log, mtLog.String())
		}
	})
	for _, w := range []*webApp{a, b} {
		w.bin, w.env = bin, env
		w.start(t)
		t.Cleanup(w.stop)
	}
	return &chainStack{redis: redisSrv, mt: mt, a: a, b: b, env: env}
}

func TestTwoInstancesOneCache(t *testing.T) {
	c := startChain(t)
	redisSrv, mt, a, b := c.redis, c.mt, c.a, c.b
	srv := mt.offline.Tenant.Server()
	ada := newBrowser(t)

	if status, body := ada.signIn(a.url(), 0, func(string) bool { return true }); status != 200 || !strings.Contains(body, "Hello, Ada Lovelace") {
		t.Fatalf("signing in on instance a: %d at %s", status, ada.last)
	}
	chain := func(w *webApp, who *browser) (int, string) {
		return who.do(http.MethodGet, w.url()+"/chain", nil)
	}
	if status, body := chain(b, ada); status != 200 || !strings.Contains(body, `id="api-ok"`) || !strings.Contains(body, "Hello Ada Lovelace, this is protected data.") ||
		!strings.Contains(body, "ada@contoso.example") {
		t.Fatalf("the chain from instance b: %d\n%s", status, body)
	}

	// Both restart: sessions, MSAL's tokens and the middle tier's
	// on-behalf-of tokens are all in Redis.
	a.stop()
	b.stop()
	a.start(t)
	b.start(t)
	srv.ResetCounts()
	for _, w := range []*webApp{a, b} {
		if status, body := chain(w, ada); status != 200 || !strings.Contains(body, `id="api-ok"`) {
			t.Fatalf("the chain from %s after the restart: %d\n%s", w.addr, status, body)
		}
	}
	if n := srv.Requests(entratest.Token); n != 0 {
		t.Errorf("%d token requests after the restart, want 0: the shared caches answer", n)
	}

	// Two users at once on one instance: neither is ever signed out.
	alan := newBrowser(t)
	if status, body := alan.signIn(a.url(), 2, func(string) bool { return true }); status != 200 || !strings.Contains(body, "Hello, Alan Turing") {
		t.Fatalf("Alan's sign-in: %d at %s", status, alan.last)
	}
	concurrentUsers(t, a, map[*browser]string{ada: "Hello, Ada Lovelace", alan: "Hello, Alan Turing"})

	// Redis goes away mid-session: nothing fails with 500.
	redisSrv.Stop()
	for _, w := range []*webApp{a, b} {
		for _, page := range []string{"/", "/profile", "/chain", "/call-api"} {
			if status, _ := ada.do(http.MethodGet, w.url()+page, nil); status >= 500 {
				t.Errorf("%s%s with Redis down: %d", w.addr, page, status)
			}
		}
	}
	redisSrv.Restart(t)
	// An instance that saw Redis fail asks it again a second later.
	time.Sleep(1200 * time.Millisecond)

	// Grace signs in (Redis is back, and empty) without granting the
	// middle tier its permission on the API: the chain's challenge comes
	// back to the browser, which consents, and the chain answers.
	grace := newBrowser(t)
	midPerm := mt.mid.ID + "|api:SecureData.Read"
	status, body := grace.signIn(a.url(), 1, func(scope string) bool { return scope != midPerm })
	if status != 200 || !strings.Contains(body, "Hello, Grace Hopper") {
		t.Fatalf("Grace's sign-in: %d at %s", status, grace.last)
	}
	status, body = chain(b, grace)
	if !strings.Contains(body, `id="continue-step-up"`) || !strings.Contains(body, "consent") {
		t.Fatalf("the chain without the middle tier's permission: %d\n%s", status, body)
	}
	_, body = grace.do(http.MethodPost, b.url()+"/step-up", url.Values{})
	if !strings.Contains(body, midPerm) {
		t.Fatalf("after the challenge, want the consent page offering the middle tier's permission, at %s:\n%s", grace.last, body)
	}
	status, body = grace.consent(body, func(string) bool { return true })
	if status != 200 || !strings.HasSuffix(grace.last, "/chain") || !strings.Contains(body, "Hello Grace Hopper, this is protected data.") {
		t.Errorf("after consenting: %d at %s\n%s", status, grace.last, body)
	}
	signOutSticks(t, c, grace, 1)
}

// concurrentUsers loads the profile page of each browser's user many times
// at once on one instance: every answer is that user's profile.
func concurrentUsers(t *testing.T, w *webApp, users map[*browser]string) {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	wrong := map[string]int{}
	for who, hello := range users {
		for range 4 {
			wg.Go(func() {
				for range 25 {
					status, body := who.do(http.MethodGet, w.url()+"/profile", nil)
					if status != 200 || !strings.Contains(body, hello) {
						mu.Lock()
						wrong[hello]++
						mu.Unlock()
					}
				}
			})
		}
	}
	wg.Wait()
	if len(wrong) > 0 {
		t.Errorf("profile pages that were not the user's own (signed out, or another's), by user: %v", wrong)
	}
}

// signOutSticks: a sign-out while Redis hangs is refused (503, the user
// still signed in) rather than lost; once Redis is back it ends every copy
// of the session on every instance at once, even where the memory layer
// holds the account's previous sign-out. The user is user i of the sign-in
// page.
func signOutSticks(t *testing.T, c *chainStack, user *browser, i int) {
	t.Helper()
	redisSrv, a, b := c.redis, c.a, c.b
	// A sign-out and a new sign-in first: the account has a sign-out
	// record, which b reads (and keeps in its memory layer) below.
	if status, body := user.do(http.MethodPost, a.url()+"/logout", url.Values{}); status != 200 || !strings.Contains(body, `id="signed-out"`) {
		t.Fatalf("the first sign-out: %d at %s", status, user.last)
	}
	if status, body := user.signIn(a.url(), i, func(string) bool { return true }); status != 200 || !strings.Contains(body, `id="profile"`) {
		t.Fatalf("signing in again: %d at %s", status, user.last)
	}
	copied := newBrowser(t)
	for _, w := range []*webApp{a, b} {
		u, _ := url.Parse(w.url())
		copied.client.Jar.SetCookies(u, user.client.Jar.Cookies(u))
	}
	profile := func(who *browser, w *webApp) bool {
		status, body := who.do(http.MethodGet, w.url()+"/profile", nil)
		return status == 200 && strings.Contains(body, `id="profile"`)
	}
	if !profile(copied, b) || !profile(user, a) {
		t.Fatal("the copied session does not open the profile before the sign-out")
	}

	redisSrv.Pause(t)
	status, body := user.do(http.MethodPost, a.url()+"/logout", url.Values{})
	if status != http.StatusServiceUnavailable || !strings.Contains(body, "not signed out yet") || !strings.Contains(body, `id="sign-out-again"`) {
		t.Errorf("signing out with Redis hung: %d\n%s", status, body)
	}
	if status, body := user.do(http.MethodGet, a.url()+"/profile", nil); status != 200 || !strings.Contains(body, `id="profile"`) {
		t.Errorf("after the refused sign-out the user is no longer signed in: %d at %s\n%s", status, user.last, body)
	}
	redisSrv.Resume(t)
	time.Sleep(1200 * time.Millisecond) // an instance that saw Redis fail asks it again a second later

	// An instance that has never seen the session (b, restarted) cannot
	// read it while Redis hangs: it neither shows the user signed out nor
	// takes a sign-out it cannot record.
	b.stop()
	b.start(t)
	redisSrv.Pause(t)
	if status, body := user.do(http.MethodGet, b.url()+"/", nil); status != http.StatusServiceUnavailable || !strings.Contains(body, "cannot reach its session store") {
		t.Errorf("home on an instance that cannot read the session: %d\n%s", status, body)
	}
	if status, body := user.do(http.MethodPost, b.url()+"/logout", url.Values{}); status != http.StatusServiceUnavailable || !strings.Contains(body, "not signed out yet") {
		t.Errorf("signing out on an instance that cannot read the session: %d\n%s", status, body)
	}
	redisSrv.Resume(t)
	time.Sleep(1200 * time.Millisecond)
	if !profile(copied, b) {
		t.Fatal("the session was lost while Redis hung")
	}

	if !userInRedis(t, c, i) {
		t.Fatal("the signed-in user's MSAL partition is not in Redis")
	}
	if status, body := user.do(http.MethodPost, a.url()+"/logout", url.Values{}); status != 200 || !strings.Contains(body, `id="signed-out"`) {
		t.Fatalf("signing out: %d at %s\n%s", status, user.last, body)
	}
	for _, w := range []*webApp{b, a} {
		if profile(copied, w) {
			t.Errorf("a copy of the signed-out session still opens the profile on %s", w.addr)
		}
	}
	time.Sleep(1100 * time.Millisecond) // the record lasts, not just a moment
	if profile(copied, b) {
		t.Error("a copy of the signed-out session opens the profile again a second later")
	}
	checkRedisAfterSignOut(t, c, i)
}

// userInRedis reports whether user i's MSAL partition is in Redis, read
// as the web app reads it.
func userInRedis(t *testing.T, c *chainStack, i int) bool {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: c.redis.Addr})
	defer rdb.Close()
	var key []byte
	for _, e := range c.env {
		if v, ok := strings.CutPrefix(e, "TOKEN_CACHE_KEY="); ok {
			key, _ = base64.StdEncoding.DecodeString(v)
		}
	}
	store, err := tokencache.New(tokencache.Config{Redis: rdb, Key: key, Prefix: "entragate:webapp:", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	tenant := c.mt.offline.Tenant
	ok, err := store.MSAL("msal", time.Hour).Stored(context.Background(), tenant.Users()[i].ObjectID+"."+tenant.ID)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// checkRedisAfterSignOut: the signed-out user's tokens are gone from
// Redis (MSAL's RemoveAccount does not reach them: DeleteAccount must),
// and no Redis key names any user.
func checkRedisAfterSignOut(t *testing.T, c *chainStack, i int) {
	t.Helper()
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: c.redis.Addr})
	defer rdb.Close()
	users := c.mt.offline.Tenant.Users()
	if userInRedis(t, c, i) {
		t.Errorf("the signed-out user's MSAL partition is still in Redis")
	}
	keys := rdb.Keys(ctx, "*").Val()
	if len(keys) == 0 {
		t.Fatal("no keys in Redis")
	}
	for _, k := range keys {
		for _, u := range users {
			if strings.Contains(k, u.ObjectID) {
				t.Errorf("Redis key %s names %s", k, u.Name)
			}
		}
	}
}

// The middle tier's own answers: the caller's token as the assertion, the
// downstream API's and Graph's answers as the caller; a caller whose
// consent is missing gets the claims challenge (401), never a 500.
func TestMiddleTierAnswers(t *testing.T) {
	for _, v := range variables {
		t.Setenv(v, "")
	}
	mt, err := start(context.Background(), slog.New(slog.DiscardHandler), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mt.Close)
	tenant := mt.offline.Tenant
	call := func(token string) (int, http.Header, map[string]any) {
		req, _ := http.NewRequest(http.MethodGet, mt.URL+"/chain", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, resp.Header, body
	}
	// A token for the middle tier that Entra never issued through a
	// consented sign-in: the on-behalf-of request fails for consent.
	token := tenant.AccessToken(entratest.Audience(mt.mid.ID), entratest.Scopes(middleScope), entratest.ClientApp(mt.offline.WebApp.ClientID))
	status, header, body := call(token)
	if status != http.StatusUnauthorized || !strings.Contains(header.Get("WWW-Authenticate"), `error="insufficient_claims"`) {
		t.Errorf("without consent: %d %q %v", status, header.Values("WWW-Authenticate"), body)
	}
	if status, _, _ := call(tenant.AccessToken(entratest.Scopes(middleScope))); status != http.StatusUnauthorized {
		t.Errorf("a token for another API: %d", status)
	}
	mt.offline.Tenant.Server().SetFault(entratest.Token, entratest.Unavailable)
	defer mt.offline.Tenant.Server().SetFault(entratest.Token, entratest.NoFault)
	if status, header, _ := call(token); status != http.StatusServiceUnavailable || header.Get("Retry-After") == "" {
		t.Errorf("Entra's token endpoint down: %d", status)
	}
}

// syncWriter serialises writes of concurrent handlers to one buffer.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
