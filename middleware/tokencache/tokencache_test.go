package tokencache_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/entragate/entragate/middleware/tokencache"
	"github.com/entragate/entragate/middleware/tokencache/redistest"
)

func newKey(t testing.TB) []byte {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

func newStore(t testing.TB, srv *redistest.Server, key []byte, edit ...func(*tokencache.Config)) (*tokencache.Store, *redis.Client) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	cfg := tokencache.Config{Redis: rdb, Key: key, Logger: slog.New(slog.DiscardHandler)}
	for _, e := range edit {
		e(&cfg)
	}
	s, err := tokencache.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s, rdb
}

// Values are sealed in Redis: their text is not there, a value moved to
// another key does not open, nor one sealed with another Key; another
// instance with the Key reads them.
func TestValuesAreSealed(t *testing.T) {
	srv := redistest.Start(t)
	key := newKey(t)
	a, rdb := newStore(t, srv, key)
	b, _ := newStore(t, srv, key)
	other, _ := newStore(t, srv, newKey(t))
	ctx := context.Background()
	secret := []byte(`{"refresh_token":"1.AVQA-the-refresh-token"}`)
	if err := a.Set(ctx, "user:1", secret, time.Minute); err != nil {
		t.Fatal(err)
	}
	raw, err := rdb.Get(ctx, tokencache.DefaultPrefix+"user:1").Bytes()
	if err != nil || bytes.Contains(raw, []byte("refresh")) || len(raw) < len(secret) {
		t.Fatalf("in Redis: %q %v", raw, err)
	}
	if got, _ := b.Get(ctx, "user:1"); !bytes.Equal(got, secret) {
		t.Errorf("another instance read %q", got)
	}
	if got, _ := other.Get(ctx, "user:1"); got != nil {
		t.Errorf("a store with another Key read %q", got)
	}
	rdb.Set(ctx, tokencache.DefaultPrefix+"user:2", raw, time.Minute)
	if got, _ := b.Get(ctx, "user:2"); got != nil {
		t.Errorf("a value moved to another key opened: %q", got)
	}
	if err := a.Set(ctx, "short", []byte("x"), time.Second); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)
	if got, _ := b.Get(ctx, "short"); got != nil {
		t.Errorf("expired value read: %q", got)
	}
	if _, err := tokencache.New(tokencache.Config{Redis: rdb, Key: []byte("short")}); err == nil {
		t.Error("a 5-byte Key accepted")
	}
}

// Redis down or slow: reads come from the memory layer (until values
// expire), writes are kept there, nothing fails; a delete Redis missed is
// replayed once it answers, so what was deleted does not come back.
func TestRedisOutages(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	s, rdb := newStore(t, srv, newKey(t), func(c *tokencache.Config) {
		c.LocalTTL = 50 * time.Millisecond
		c.Timeout = 100 * time.Millisecond
	})
	if err := s.Set(ctx, "session:a", []byte("alice"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := s.Set(ctx, "session:b", []byte("bob"), time.Hour); err != nil {
		t.Fatal(err)
	}
	time.Sleep(60 * time.Millisecond) // past LocalTTL: the next read asks Redis

	// Slow: every client paused past the timeout.
	if err := rdb.Do(ctx, "CLIENT", "PAUSE", "1500", "ALL").Err(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if got, err := s.Get(ctx, "session:a"); err != nil || string(got) != "alice" {
		t.Errorf("Redis slow: %q %v, want the memory layer's", got, err)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("a read waited %v for a slow Redis", d)
	}
	if err := s.Delete(ctx, "session:b"); err != nil {
		t.Fatal(err)
	}
	if err := s.Set(ctx, "session:c", []byte("carol"), time.Hour); err != nil {
		t.Errorf("Set with Redis slow: %v", err)
	}
	if got, _ := s.Get(ctx, "session:c"); string(got) != "carol" {
		t.Errorf("a value written while Redis was slow: %q", got)
	}
	if st := s.Stats(); st.RedisErrors == 0 || st.PendingDeletes != 1 {
		t.Errorf("stats %+v", st)
	}
	time.Sleep(1600 * time.Millisecond) // the pause ends
	if _, err := s.Get(ctx, "session:a"); err != nil {
		t.Fatal(err)
	}
	// Replayed in the background, not by the request that found Redis
	// back.
	for deadline := time.Now().Add(2 * time.Second); s.Stats().PendingDeletes != 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if n, _ := rdb.Exists(ctx, tokencache.DefaultPrefix+"session:b").Result(); n != 0 {
		t.Error("a delete missed while Redis was slow was not replayed")
	}
	if st := s.Stats(); st.PendingDeletes != 0 {
		t.Errorf("stats after recovery %+v", st)
	}

	// Down: nothing fails, the memory layer answers.
	srv.Stop()
	if got, err := s.Get(ctx, "session:a"); err != nil || string(got) != "alice" {
		t.Errorf("Redis down: %q %v", got, err)
	}
	if got, err := s.Get(ctx, "never-seen"); !errors.Is(err, tokencache.ErrUnavailable) || got != nil {
		t.Errorf("Redis down, unknown key: %q %v, want ErrUnavailable (it cannot say)", got, err)
	}
}

// What every instance must see at once: GetFresh reads what another
// instance just wrote, whatever the memory layer holds; SetStrict says
// when Redis did not take a value, where Set keeps going.
func TestFreshReadsAndStrictWrites(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	key := newKey(t)
	a, _ := newStore(t, srv, key)
	b, rdb := newStore(t, srv, key, func(c *tokencache.Config) { c.Timeout = 100 * time.Millisecond })
	if err := a.Set(ctx, "signed-out:ada", []byte("09:00"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if got, _ := b.Get(ctx, "signed-out:ada"); string(got) != "09:00" {
		t.Fatalf("b read %q", got)
	}
	if err := a.SetStrict(ctx, "signed-out:ada", []byte("09:05"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if got, _ := b.Get(ctx, "signed-out:ada"); string(got) != "09:00" {
		t.Errorf("Get within LocalTTL: %q, want the memory layer's 09:00", got)
	}
	if got, _ := b.GetFresh(ctx, "signed-out:ada"); string(got) != "09:05" {
		t.Errorf("GetFresh: %q, want what a wrote, 09:05", got)
	}

	if err := rdb.Do(ctx, "CLIENT", "PAUSE", "1000", "ALL").Err(); err != nil {
		t.Fatal(err)
	}
	if err := b.SetStrict(ctx, "signed-out:ada", []byte("09:10"), time.Hour); !errors.Is(err, tokencache.ErrUnavailable) {
		t.Errorf("SetStrict with Redis paused: %v, want ErrUnavailable", err)
	}
	if err := b.Set(ctx, "session:x", []byte("x"), time.Hour); err != nil {
		t.Errorf("Set with Redis paused: %v, want nil", err)
	}
	if got, _ := b.GetFresh(ctx, "signed-out:ada"); string(got) != "09:05" {
		t.Errorf("GetFresh with Redis paused: %q, want the memory layer's 09:05 (what Redis did not take is not kept)", got)
	}
	if err := b.SetStrict(ctx, "k", []byte("v"), 0); err == nil {
		t.Error("SetStrict with no ttl accepted")
	}
}

// A value that does not open (another Key's) is logged once per 10 s, not
// at every read.
func TestForeignValuesAreLoggedOnce(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	a, _ := newStore(t, srv, newKey(t))
	var log bytes.Buffer
	b, _ := newStore(t, srv, newKey(t), func(c *tokencache.Config) {
		c.Logger = slog.New(slog.NewTextHandler(&log, nil))
		c.LocalTTL = time.Millisecond
	})
	if err := a.Set(ctx, "user:1", []byte("x"), time.Hour); err != nil {
		t.Fatal(err)
	}
	for range 30 {
		if got, _ := b.Get(ctx, "user:1"); got != nil {
			t.Fatalf("read %q with another Key", got)
		}
	}
	if n := strings.Count(log.String(), "does not open"); n != 1 {
		t.Errorf("%d warnings for 30 reads, want 1:\n%s", n, log.String())
	}
}

// Many deletes missed while Redis was away are all replayed once it is
// back, in batches.
func TestManyMissedDeletesAreReplayed(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	s, rdb := newStore(t, srv, newKey(t), func(c *tokencache.Config) { c.Timeout = 100 * time.Millisecond })
	for i := range 250 {
		if err := s.Set(ctx, fmt.Sprintf("session:%d", i), []byte("x"), time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if err := rdb.Do(ctx, "CLIENT", "PAUSE", "800", "WRITE").Err(); err != nil {
		t.Fatal(err)
	}
	for i := range 250 {
		_ = s.Delete(ctx, fmt.Sprintf("session:%d", i))
	}
	time.Sleep(1200 * time.Millisecond) // the pause and the breaker end
	_, _ = s.Get(ctx, "other")
	for deadline := time.Now().Add(3 * time.Second); s.Stats().PendingDeletes != 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		_, _ = s.Get(ctx, "other")
	}
	if n := rdb.Keys(ctx, tokencache.DefaultPrefix+"session:*").Val(); len(n) != 0 || s.Stats().PendingDeletes != 0 {
		t.Errorf("%d sessions left in Redis, %d pending", len(n), s.Stats().PendingDeletes)
	}
}

// During an outage GetFresh answers with what it read from Redis (a value,
// or that there was none) within LocalTTL, never older: a sign-out
// reaches every instance within LocalTTL whatever Redis does.
func TestGetFreshIsNeverStale(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	s, _ := newStore(t, srv, newKey(t), func(c *tokencache.Config) {
		c.LocalTTL = 300 * time.Millisecond
		c.Timeout = 50 * time.Millisecond
	})
	if err := s.Set(ctx, "record:ada", []byte("signed out"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetFresh(ctx, "record:ada"); string(got) != "signed out" || err != nil {
		t.Fatalf("%q %v", got, err)
	}
	if got, err := s.GetFresh(ctx, "record:grace"); got != nil || err != nil {
		t.Fatalf("absent: %q %v", got, err)
	}
	srv.Pause(t)
	for _, k := range []string{"record:ada", "record:grace"} {
		if _, err := s.GetFresh(ctx, k); err != nil {
			t.Errorf("%s within LocalTTL of its last read: %v", k, err)
		}
	}
	if got, _ := s.GetFresh(ctx, "record:grace"); got != nil {
		t.Errorf("absent within LocalTTL: %q", got)
	}
	time.Sleep(350 * time.Millisecond)
	for _, k := range []string{"record:ada", "record:grace"} {
		if got, err := s.GetFresh(ctx, k); !errors.Is(err, tokencache.ErrUnavailable) {
			t.Errorf("%s past LocalTTL with Redis hung: %q %v, want ErrUnavailable", k, got, err)
		}
	}
	if got, err := s.Get(ctx, "record:ada"); string(got) != "signed out" || err != nil {
		t.Errorf("Get past LocalTTL with Redis hung: %q %v, want the memory layer's", got, err)
	}
}

// A delete Redis missed never removes a value written after it (by
// another instance, or this one), and what it deleted is never read back
// from Redis meanwhile.
func TestMissedDeletesSpareNewerValues(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	key := newKey(t)
	quick := func(c *tokencache.Config) { c.Timeout = 100 * time.Millisecond; c.LocalTTL = time.Millisecond }
	a, rdb := newStore(t, srv, key, quick)
	b, _ := newStore(t, srv, key, quick)
	for _, k := range []string{"partition:ada", "partition:grace", "session:old"} {
		if err := a.Set(ctx, k, []byte("old"), time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if err := rdb.Do(ctx, "CLIENT", "PAUSE", "400", "WRITE").Err(); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"partition:ada", "partition:grace", "session:old"} {
		_ = a.Delete(ctx, k)
	}
	if a.Stats().PendingDeletes != 3 {
		t.Fatalf("stats %+v", a.Stats())
	}
	time.Sleep(1200 * time.Millisecond) // the pause and the breaker end
	if got, err := a.Get(ctx, "session:old"); got != nil || err != nil {
		t.Errorf("a key deleted here, still in Redis: %q %v, want none", got, err)
	}
	if err := b.Set(ctx, "partition:ada", []byte("new, from b"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := a.Set(ctx, "partition:grace", []byte("new, from a"), time.Hour); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(3 * time.Second); a.Stats().PendingDeletes != 0 && time.Now().Before(deadline); {
		_, _ = a.Get(ctx, "other")
		time.Sleep(20 * time.Millisecond)
	}
	for k, want := range map[string]string{"partition:ada": "new, from b", "partition:grace": "new, from a", "session:old": ""} {
		if got, _ := b.Get(ctx, k); string(got) != want {
			t.Errorf("%s after the replay: %q, want %q", k, got, want)
		}
	}
}

// Deletes missed beyond LocalEntries are counted, not silently lost.
func TestDroppedDeletesAreCounted(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	s, rdb := newStore(t, srv, newKey(t), func(c *tokencache.Config) { c.Timeout = 100 * time.Millisecond; c.LocalEntries = 2 })
	if err := rdb.Do(ctx, "CLIENT", "PAUSE", "300", "WRITE").Err(); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		_ = s.Delete(ctx, fmt.Sprintf("k%d", i))
	}
	if st := s.Stats(); st.PendingDeletes != 2 || st.DroppedDeletes != 1 {
		t.Errorf("stats %+v, want 2 pending and 1 dropped", st)
	}
}

// hookedRedis runs a function after the commands or pipelines it matches,
// to place another client's write or a delay exactly there.
type hookedRedis struct {
	before, after func(ctx context.Context, cmds []redis.Cmder)
}

func (h *hookedRedis) run(f func(context.Context, []redis.Cmder), ctx context.Context, cmds []redis.Cmder) {
	if f != nil {
		f(ctx, cmds)
	}
}

func (h *hookedRedis) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *hookedRedis) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.run(h.before, ctx, []redis.Cmder{cmd})
		err := next(ctx, cmd)
		h.run(h.after, ctx, []redis.Cmder{cmd})
		return err
	}
}
func (h *hookedRedis) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.run(h.before, ctx, cmds)
		err := next(ctx, cmds)
		h.run(h.after, ctx, cmds)
		return err
	}
}

// A read whose answer arrives after this instance deleted the key keeps
// nothing in the memory layer: the value may be the deleted one.
func TestReadsOverlappingADeleteKeepNothing(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	var slow atomic.Bool
	s, rdb := newStore(t, srv, newKey(t), func(c *tokencache.Config) { c.Timeout = time.Second })
	rdb.AddHook(&hookedRedis{after: func(_ context.Context, cmds []redis.Cmder) {
		if slow.Load() && cmds[0].Name() == "get" {
			time.Sleep(150 * time.Millisecond)
		}
	}})
	if err := s.Set(ctx, "partition:ada", []byte("refresh token"), time.Hour); err != nil {
		t.Fatal(err)
	}
	slow.Store(true)
	done := make(chan []byte)
	go func() { v, _ := s.GetFresh(ctx, "partition:ada"); done <- v }()
	time.Sleep(50 * time.Millisecond)
	slow.Store(false)
	if err := s.Delete(ctx, "partition:ada"); err != nil {
		t.Fatal(err)
	}
	<-done
	srv.Stop()
	if got, err := s.Get(ctx, "partition:ada"); got != nil {
		t.Errorf("after the delete, with Redis down: %q %v, want nothing (the overlapping read kept the deleted value)", got, err)
	}
}

// A replayed delete removes only the value it read: another instance's
// write between its read and its delete stays.
func TestReplayedDeletesCompareAndDelete(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	key := newKey(t)
	b, _ := newStore(t, srv, key)
	var armed atomic.Bool
	a, rdb := newStore(t, srv, key, func(c *tokencache.Config) { c.Timeout = 100 * time.Millisecond })
	rdb.AddHook(&hookedRedis{after: func(ctx context.Context, cmds []redis.Cmder) {
		if len(cmds) > 0 && cmds[0].Name() == "get" && cmds[0].Args()[1] == tokencache.DefaultPrefix+"partition:ada" && armed.CompareAndSwap(true, false) {
			_ = b.Set(ctx, "partition:ada", []byte("new sign-in"), time.Hour) // lands between the replay's read and its delete
		}
	}})
	if err := a.Set(ctx, "partition:ada", []byte("old"), time.Hour); err != nil {
		t.Fatal(err)
	}
	sealed, err := rdb.Get(ctx, tokencache.DefaultPrefix+"partition:ada").Bytes()
	if err != nil {
		t.Fatal(err)
	}
	if err := rdb.Do(ctx, "CLIENT", "PAUSE", "300", "WRITE").Err(); err != nil {
		t.Fatal(err)
	}
	_ = a.Delete(ctx, "partition:ada")
	time.Sleep(1200 * time.Millisecond) // the pause and the breaker end
	// The paused DEL ran when the pause ended: the old value comes back as
	// it was, as if it had never reached Redis.
	if err := rdb.Set(ctx, tokencache.DefaultPrefix+"partition:ada", sealed, time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	armed.Store(true)
	_, _ = a.Get(ctx, "other") // starts the replay
	for deadline := time.Now().Add(3 * time.Second); a.Stats().PendingDeletes != 0 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if got, _ := b.GetFresh(ctx, "partition:ada"); string(got) != "new sign-in" {
		t.Errorf("after the replay: %q, want the value written between its read and its delete", got)
	}
}

// A key whose delete is pending answers from Redis again once the delete
// is replayed, now if Redis answers: another instance's newer value, not
// "none"; and a successful write of the key ends its pending delete.
func TestPendingDeletesAndNewerValues(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	key := newKey(t)
	quick := func(c *tokencache.Config) { c.Timeout = 100 * time.Millisecond }
	a, rdb := newStore(t, srv, key, quick)
	b, _ := newStore(t, srv, key, quick)
	for _, k := range []string{"partition:ada", "partition:grace"} {
		if err := a.Set(ctx, k, []byte("old"), time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if err := rdb.Do(ctx, "CLIENT", "PAUSE", "300", "WRITE").Err(); err != nil {
		t.Fatal(err)
	}
	_ = a.Delete(ctx, "partition:ada")
	_ = a.Delete(ctx, "partition:grace")
	time.Sleep(1200 * time.Millisecond)
	if err := a.Set(ctx, "partition:grace", []byte("again"), time.Hour); err != nil || a.Stats().PendingDeletes != 1 {
		t.Errorf("a write of a key with a pending delete: %v, %+v pending, want 1 left", err, a.Stats())
	}
	if err := b.Set(ctx, "partition:ada", []byte("new sign-in on b"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if got, err := a.Get(ctx, "partition:ada"); string(got) != "new sign-in on b" || err != nil {
		t.Errorf("a's read: %q %v, want b's newer value", got, err)
	}
}

// A read that begins while this instance's DEL is on its way to Redis
// keeps nothing either: once the Delete returns, the value is gone here
// too.
func TestReadsDuringADeleteKeepNothing(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	var slowDel atomic.Bool
	s, rdb := newStore(t, srv, newKey(t), func(c *tokencache.Config) { c.Timeout = time.Second; c.LocalTTL = time.Minute })
	rdb.AddHook(&hookedRedis{before: func(_ context.Context, cmds []redis.Cmder) {
		if slowDel.Load() && cmds[0].Name() == "del" {
			time.Sleep(200 * time.Millisecond)
		}
	}})
	if err := s.Set(ctx, "partition:ada", []byte("refresh token"), time.Hour); err != nil {
		t.Fatal(err)
	}
	slowDel.Store(true)
	done := make(chan struct{})
	go func() { _ = s.Delete(ctx, "partition:ada"); close(done) }()
	time.Sleep(50 * time.Millisecond)
	_, _ = s.GetFresh(ctx, "partition:ada") // reads the old value: the DEL is not there yet
	<-done
	if got, err := s.Get(ctx, "partition:ada"); got != nil {
		t.Errorf("after the Delete returned: %q %v, want nothing", got, err)
	}
}
