package tokencache_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"log/slog"
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
	if got, err := s.Get(ctx, "never-seen"); err != nil || got != nil {
		t.Errorf("Redis down, unknown key: %q %v", got, err)
	}
}
