package main

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/entragate/entragate/middleware/tokencache"
)

// A browser's session has two halves. The cookie, sealed with AES-256-GCM
// (readable and changeable by nobody but the app), carries a sign-in in
// progress and the ID of a signed-in session. The signed-in session itself
// (the MSAL account it uses, the verified claims it shows) lives on the
// server, in a SessionStore: signing out deletes it there, so a cookie
// copied before sign-out opens nothing afterwards, and a new sign-in gets
// a new ID. No token is in either half: MSAL's token cache holds them,
// keyed by the account.
type session struct {
	cookie
	// The signed-in user, from the store; empty when signed out.
	AccountID string            // MSAL's home account ID
	Claims    map[string]string // verified ID-token claims, for the profile page
	// unreadable: the cookie names a session the store cannot say anything
	// about right now (Redis unreachable): neither signed in nor out.
	unreadable bool
}

func (s *session) signedIn() bool { return s.AccountID != "" }

// cookie is what the browser carries.
type cookie struct {
	// The sign-in in progress: checked once on the way back, then cleared.
	State, Nonce, Verifier string `json:",omitempty"`
	// StepUpClaims are the claims a step-up sign-in in progress asks for
	// (the API's claims challenge); SteppedUp says the user just completed
	// one, so the page that asked is retried once and never asks again.
	StepUpClaims string `json:",omitempty"`
	StepUpPage   string `json:",omitempty"` // the page to return to, one of App.targets
	SteppedUp    bool   `json:",omitempty"`
	// PendingClaims and PendingPage are a claims challenge the user has
	// not yet confirmed signing in again for.
	PendingClaims string `json:",omitempty"`
	PendingPage   string `json:",omitempty"`
	// SessionID names the signed-in session in the store.
	SessionID string `json:",omitempty"`
	Expires   time.Time
}

// signedInSession is what the server keeps of a signed-in browser, or,
// under an account's key, the account's last sign-out.
type signedInSession struct {
	AccountID string
	Claims    map[string]string
	// Generation is, in an account's sign-out record, a random name of the
	// last sign-out; in a session, the record's generation when the
	// session began. A session lives while they match (or there is no
	// record): every sign-out ends the sessions that began before it,
	// whatever the instances' clocks say.
	Generation string
	SignedIn   time.Time
	Expires    time.Time
}

// SessionStore keeps signed-in sessions on the server, by ID. IDs reach it
// hashed: a copy of the store holds no cookie a browser could replay.
// GetLatest and PutLatest are Get and Put for what every instance must see
// at once, an account's sign-out: GetLatest reads the shared store itself
// (another instance's copy of a moment ago would do for a session, not for
// a sign-out), PutLatest fails when the shared store did not take it.
type SessionStore interface {
	Get(ctx context.Context, id string) (*signedInSession, error) // nil, nil when absent
	Put(ctx context.Context, id string, s *signedInSession) error
	Delete(ctx context.Context, id string) error
	GetLatest(ctx context.Context, id string) (*signedInSession, error)
	PutLatest(ctx context.Context, id string, s *signedInSession) error
}

const (
	cookieName      = "__Host-entragate-webapp" // __Host-: Secure, Path=/, no Domain
	sessionLifetime = 8 * time.Hour
)

// sessions seals and opens session cookies, and keeps signed-in sessions in
// its store.
type sessions struct {
	aead  cipher.AEAD
	names []byte // the key of the store's names
	store SessionStore
}

func newSessions(key []byte, store SessionStore) (*sessions, error) {
	if len(key) != 32 {
		return nil, errors.New("the session key must be 32 bytes")
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("entragate webapp: session store names"))
	return &sessions{aead: aead, names: mac.Sum(nil), store: store}, nil
}

// load returns the browser's session: an empty one when the cookie is
// missing, forged or expired; signed out when the store no longer has its
// signed-in half.
func (m *sessions) load(r *http.Request) *session {
	s := &session{cookie: m.open(r)}
	if s.SessionID == "" {
		return s
	}
	in, err := m.store.Get(r.Context(), m.storeKey(s.SessionID))
	if err == nil && in != nil && time.Now().Before(in.Expires) {
		var ended bool
		if ended, err = m.endedBySignOut(r.Context(), in); err == nil && ended {
			// Ended by a sign-out: the ID stays, so that a sign-out from
			// this browser deletes the session it names (and nothing of
			// the account's: its tokens may be a newer session's).
			return s
		} else if err == nil {
			s.AccountID, s.Claims = in.AccountID, in.Claims
			return s
		}
	}
	s.unreadable = err != nil // the cookie is kept: the session may be fine
	if !s.unreadable {
		s.SessionID = ""
	}
	return s
}

// endedBySignOut reports whether the account signed out, in any browser,
// since the session began; an error when the store cannot say (the
// caller then treats the session as neither: it fails closed).
func (m *sessions) endedBySignOut(ctx context.Context, in *signedInSession) (bool, error) {
	out, err := m.store.GetLatest(ctx, m.accountKey(in.AccountID))
	if err != nil {
		return false, err
	}
	return out != nil && out.Generation != in.Generation, nil
}

func (m *sessions) open(r *http.Request) cookie {
	c, err := r.Cookie(cookieName)
	if err != nil {
		return cookie{}
	}
	sealed, err := base64.RawURLEncoding.DecodeString(c.Value)
	if err != nil || len(sealed) < m.aead.NonceSize() {
		return cookie{}
	}
	nonce, box := sealed[:m.aead.NonceSize()], sealed[m.aead.NonceSize():]
	// The cookie name is authenticated too: a value sealed for another
	// purpose cannot be replayed here.
	plain, err := m.aead.Open(nil, nonce, box, []byte(cookieName))
	if err != nil {
		return cookie{}
	}
	var out cookie
	if json.Unmarshal(plain, &out) != nil || time.Now().After(out.Expires) {
		return cookie{}
	}
	return out
}

// save seals the cookie half of s. Secure (browsers treat http://localhost
// as secure too), HttpOnly (no script reads it), SameSite=Lax (sent on the
// top-level redirect back from Entra, not on cross-site subrequests).
func (m *sessions) save(w http.ResponseWriter, s *session) error {
	s.Expires = time.Now().Add(sessionLifetime)
	plain, err := json.Marshal(s.cookie)
	if err != nil {
		return err
	}
	nonce := make([]byte, m.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return err
	}
	sealed := m.aead.Seal(nonce, nonce, plain, []byte(cookieName))
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: base64.RawURLEncoding.EncodeToString(sealed), Path: "/",
		Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode, MaxAge: int(sessionLifetime / time.Second),
	})
	return nil
}

// signIn starts a signed-in session under a new ID: an ID the browser had
// before (or an attacker planted) never becomes a signed-in one.
func (m *sessions) signIn(ctx context.Context, w http.ResponseWriter, s *session, accountID string, claims map[string]string) error {
	id := make([]byte, 32)
	if _, err := rand.Read(id); err != nil {
		return err
	}
	now := time.Now()
	in := &signedInSession{AccountID: accountID, Claims: claims, SignedIn: now, Expires: now.Add(sessionLifetime)}
	// The generation of the account's last sign-out: when the store
	// cannot say, none, so that the session ends if there was one.
	if out, err := m.store.GetLatest(ctx, m.accountKey(accountID)); err == nil && out != nil {
		in.Generation = out.Generation
	}
	if s.SessionID != "" {
		// The session this sign-in replaces ends: a copy of its cookie
		// must not open it (nor, for another account, the previous
		// user's profile).
		if err := m.store.Delete(ctx, m.storeKey(s.SessionID)); err != nil {
			return err
		}
	}
	s.SessionID = base64.RawURLEncoding.EncodeToString(id)
	if err := m.store.Put(ctx, m.storeKey(s.SessionID), in); err != nil {
		return err
	}
	s.AccountID, s.Claims = accountID, claims
	return m.save(w, s)
}

// errSignOutNotRecorded: the store did not take the account's sign-out,
// so nothing else was done (the session and the cookie are as they were).
var errSignOutNotRecorded = errors.New("the sign-out could not be recorded")

// signOut ends the session on the server, and every other session of its
// account (whose tokens leave MSAL's cache with this sign-out), then the
// browser's cookie. The account's sign-out record comes first and must
// reach the shared store: otherwise signOut changes nothing and returns
// errSignOutNotRecorded, so that the user can try again, rather than
// leave sessions that would come back with the store.
func (m *sessions) signOut(ctx context.Context, w http.ResponseWriter, s *session) error {
	if s.unreadable {
		return errSignOutNotRecorded // the session's account is not known now
	}
	if s.AccountID != "" {
		generation := make([]byte, 16)
		if _, err := rand.Read(generation); err != nil {
			return err
		}
		// It outlives every session it ends: they began before it.
		record := &signedInSession{AccountID: s.AccountID, Generation: hex.EncodeToString(generation), Expires: time.Now().Add(sessionLifetime)}
		if err := m.store.PutLatest(ctx, m.accountKey(s.AccountID), record); err != nil {
			return fmt.Errorf("%w: %w", errSignOutNotRecorded, err)
		}
	}
	return m.end(ctx, w, s)
}

// end ends this browser's session only: on the server, and its cookie.
func (m *sessions) end(ctx context.Context, w http.ResponseWriter, s *session) error {
	var err error
	if s.SessionID != "" {
		err = m.store.Delete(ctx, m.storeKey(s.SessionID))
	}
	m.clear(w)
	*s = session{}
	return err
}

// clear forgets the browser's cookie.
func (m *sessions) clear(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode, MaxAge: -1})
}

// storeKey is the store's name for a session ID, and accountKey for an
// account's sign-out record: HMACs under a key derived from the session
// key, so that a copy of the store names no browser's cookie and no user
// (object IDs are no secret: a plain hash of one is found by trying the
// directory's).
func (m *sessions) storeKey(id string) string { return "session:" + m.name(id) }

func (m *sessions) accountKey(accountID string) string { return "signed-out:" + m.name(accountID) }

func (m *sessions) name(s string) string {
	mac := hmac.New(sha256.New, m.names)
	mac.Write([]byte(s))
	return hex.EncodeToString(mac.Sum(nil))
}

// memorySessions is a SessionStore in this process's memory: sessions end
// with it, and a second instance does not see them.
type memorySessions struct {
	mu sync.Mutex
	m  map[string]*signedInSession
}

// maxMemorySessions bounds the store: only signed-in sessions reach it
// (each one a sign-in Entra completed), and the oldest expire first.
const maxMemorySessions = 100_000

func newMemorySessions() *memorySessions { return &memorySessions{m: map[string]*signedInSession{}} }

func (s *memorySessions) Get(_ context.Context, id string) (*signedInSession, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[id], nil
}

func (s *memorySessions) Put(_ context.Context, id string, in *signedInSession) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.m) >= maxMemorySessions {
		s.evictLocked()
	}
	s.m[id] = in
	return nil
}

func (s *memorySessions) GetLatest(ctx context.Context, id string) (*signedInSession, error) {
	return s.Get(ctx, id)
}

func (s *memorySessions) PutLatest(ctx context.Context, id string, in *signedInSession) error {
	return s.Put(ctx, id, in)
}

func (s *memorySessions) Delete(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, id)
	return nil
}

// evictLocked drops the expired sessions, or else the one closest to
// expiring.
func (s *memorySessions) evictLocked() {
	now := time.Now()
	var oldest string
	for id, in := range s.m {
		if now.After(in.Expires) {
			delete(s.m, id)
		} else if oldest == "" || in.Expires.Before(s.m[oldest].Expires) {
			oldest = id
		}
	}
	if len(s.m) >= maxMemorySessions && oldest != "" {
		delete(s.m, oldest)
	}
}

// redisSessions is a SessionStore in Redis (through a tokencache.Store:
// sealed, with a memory layer), shared by every instance of the app:
// sessions survive restarts, and need no sticky routing.
type redisSessions struct{ store *tokencache.Store }

func (r redisSessions) Get(ctx context.Context, id string) (*signedInSession, error) {
	return decodeSession(r.store.Get(ctx, id))
}

// GetLatest asks Redis, whatever the memory layer holds (which answers
// only while Redis cannot be reached).
func (r redisSessions) GetLatest(ctx context.Context, id string) (*signedInSession, error) {
	return decodeSession(r.store.GetFresh(ctx, id))
}

func decodeSession(b []byte, err error) (*signedInSession, error) {
	if err != nil || b == nil {
		return nil, err
	}
	var s signedInSession
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

func (r redisSessions) Put(ctx context.Context, id string, s *signedInSession) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return r.store.Set(ctx, id, b, time.Until(s.Expires))
}

// PutLatest fails (tokencache.ErrUnavailable) when Redis did not take it.
func (r redisSessions) PutLatest(ctx context.Context, id string, s *signedInSession) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return r.store.SetStrict(ctx, id, b, time.Until(s.Expires))
}

func (r redisSessions) Delete(ctx context.Context, id string) error { return r.store.Delete(ctx, id) }
