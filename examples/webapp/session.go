package main

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"time"
)

// session is what the app remembers of a browser, in one cookie sealed
// with AES-256-GCM: readable and changeable by nobody but the app. It
// holds no token: MSAL's token cache does, keyed by AccountID.
type session struct {
	// The sign-in in progress: checked once on the way back, then cleared.
	State, Nonce, Verifier string `json:",omitempty"`

	// The signed-in user, from the verified ID token.
	AccountID string            `json:",omitempty"` // MSAL's home account ID
	Claims    map[string]string `json:",omitempty"` // for the profile page

	Expires time.Time
}

func (s *session) signedIn() bool { return s.AccountID != "" }

const (
	cookieName      = "__Host-entragate-webapp" // __Host-: Secure, Path=/, no Domain
	sessionLifetime = 8 * time.Hour
)

// sessions seals and opens session cookies.
type sessions struct{ aead cipher.AEAD }

func newSessions(key []byte) (*sessions, error) {
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
	return &sessions{aead: aead}, nil
}

// load returns the browser's session, or an empty one.
func (m *sessions) load(r *http.Request) *session {
	c, err := r.Cookie(cookieName)
	if err != nil {
		return &session{}
	}
	sealed, err := base64.RawURLEncoding.DecodeString(c.Value)
	if err != nil || len(sealed) < m.aead.NonceSize() {
		return &session{}
	}
	nonce, box := sealed[:m.aead.NonceSize()], sealed[m.aead.NonceSize():]
	// The cookie name is authenticated too: a value sealed for another
	// purpose cannot be replayed here.
	plain, err := m.aead.Open(nil, nonce, box, []byte(cookieName))
	if err != nil {
		return &session{}
	}
	var s session
	if json.Unmarshal(plain, &s) != nil || time.Now().After(s.Expires) {
		return &session{}
	}
	return &s
}

// save seals s into the cookie. Secure (browsers treat http://localhost as
// secure too), HttpOnly (no script reads it), SameSite=Lax (sent on the
// top-level redirect back from Entra, not on cross-site subrequests).
func (m *sessions) save(w http.ResponseWriter, s *session) error {
	s.Expires = time.Now().Add(sessionLifetime)
	plain, err := json.Marshal(s)
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

// clear ends the browser's session.
func (m *sessions) clear(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode, MaxAge: -1})
}
