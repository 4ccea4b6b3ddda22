package tokencache

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/cache"
	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"
)

// MSAL is an MSAL for Go token cache (confidential.WithCache) in the
// store: one value per partition MSAL names (a user's home account ID, an
// app's client-credentials cache), under namespace. A partition lives
// until its last access token expires, or for maxTTL when it holds a
// refresh token (a signed-in user's), then Redis forgets it.
//
// Three gaps of MSAL for Go v1.10's external caches, which tests show.
// Its on-behalf-of flow does not work with one at all: its partitioned
// cache cannot be loaded (AcquireTokenOnBehalfOf fails with an Unmarshal
// error), and it would export the user cache in its place; give a middle
// tier's client no external cache and share its tokens with OnBehalfOf.
// RemoveAccount reads and writes a partition that is not the account's,
// so the account stays in the store: call DeleteAccount too when a user
// signs out. And a client loads a partition into its one memory cache
// and reads it after releasing its lock, so a client shared by several
// users loses one user's partition to another's concurrent request (no
// account, no token found): give each account a client of its own.
func (s *Store) MSAL(namespace string, maxTTL time.Duration) *MSALCache {
	return &MSALCache{s: s, ns: namespace, maxTTL: maxTTL}
}

// MSALCache implements cache.ExportReplace.
type MSALCache struct {
	s      *Store
	ns     string
	maxTTL time.Duration
}

var _ cache.ExportReplace = (*MSALCache)(nil)

// key is the store's name of a partition: keyed-hashed, since MSAL names
// a user's partition by their object and tenant IDs, and Redis keys are
// not sealed (a copy of Redis would list who is signed in).
func (c *MSALCache) key(partition string) string {
	if partition == "" {
		return c.ns + ":msal:-"
	}
	return c.ns + ":msal:" + c.s.name(partition)
}

// Replace loads the partition MSAL asks for into its memory, an empty one
// when the store has none (or cannot be read): MSAL then acquires tokens
// afresh, never fails the request.
func (c *MSALCache) Replace(ctx context.Context, u cache.Unmarshaler, hints cache.ReplaceHints) error {
	data, err := c.s.Get(ctx, c.key(hints.PartitionKey))
	if err != nil || len(data) == 0 {
		data = []byte("{}")
	}
	return u.Unmarshal(data)
}

// Export stores the partition MSAL wrote.
func (c *MSALCache) Export(ctx context.Context, m cache.Marshaler, hints cache.ExportHints) error {
	data, err := m.Marshal()
	if err != nil {
		return err
	}
	return c.s.Set(ctx, c.key(hints.PartitionKey), data, c.ttl(data))
}

// DeleteAccount removes a user's partition (their home account ID): what
// RemoveAccount should do with an external cache.
func (c *MSALCache) DeleteAccount(ctx context.Context, homeAccountID string) error {
	return c.s.Delete(ctx, c.key(homeAccountID))
}

// Stored reports whether the store holds a user's partition (their home
// account ID): when MSAL finds no account, whether it is gone (false, nil)
// or the store cannot say now (ErrUnavailable), which a web app answers
// differently (sign in again, or try again later).
func (c *MSALCache) Stored(ctx context.Context, homeAccountID string) (bool, error) {
	data, err := c.s.Get(ctx, c.key(homeAccountID))
	return data != nil, err
}

// ttl is how long a partition is worth keeping: maxTTL with a refresh
// token, until the last access token expires without; 0 (deleted) when
// it holds no token.
func (c *MSALCache) ttl(data []byte) time.Duration {
	var contract struct {
		AccessToken map[string]struct {
			ExpiresOn json.RawMessage `json:"expires_on"`
		}
		RefreshToken map[string]json.RawMessage
	}
	if json.Unmarshal(data, &contract) != nil {
		return c.maxTTL
	}
	if len(contract.RefreshToken) > 0 {
		return c.maxTTL
	}
	var last time.Time
	for _, at := range contract.AccessToken {
		raw := strings.Trim(string(at.ExpiresOn), `"`)
		if sec, err := strconv.ParseInt(raw, 10, 64); err == nil && time.Unix(sec, 0).After(last) {
			last = time.Unix(sec, 0)
		}
	}
	return min(time.Until(last), c.maxTTL)
}

// OnBehalfOf gets on-behalf-of tokens through client and keeps them in the
// store, by user assertion and scopes, until five minutes before they
// expire, so that every instance of a middle tier uses one token per user
// and downstream API. Give client no external cache (MSAL keeps its own in
// memory): see MSAL.
func (s *Store) OnBehalfOf(client confidential.Client, namespace string) *OnBehalfOf {
	return &OnBehalfOf{s: s, client: client, ns: namespace}
}

// OnBehalfOf is a shared cache of on-behalf-of tokens.
type OnBehalfOf struct {
	s      *Store
	client confidential.Client
	ns     string
}

// OBOToken is an on-behalf-of token.
type OBOToken struct {
	AccessToken string    `json:"access_token"`
	ExpiresOn   time.Time `json:"expires_on"`
}

// Token returns a token for scopes as the user of assertion: the store's,
// or MSAL's AcquireTokenOnBehalfOf's, stored for the other instances. An
// error is MSAL's: an interaction_required or consent_required failure is
// never answered from the cache, and never cached.
func (o *OnBehalfOf) Token(ctx context.Context, assertion string, scopes []string, opts ...confidential.AcquireOnBehalfOfOption) (OBOToken, error) {
	sorted := slices.Clone(scopes)
	slices.Sort(sorted)
	sum := sha256.Sum256([]byte(assertion + "\n" + strings.Join(sorted, " ")))
	key := o.ns + ":obo:" + base64.RawURLEncoding.EncodeToString(sum[:])
	if len(opts) == 0 { // claims or other options ask for a new token
		if data, _ := o.s.Get(ctx, key); data != nil {
			var t OBOToken
			if json.Unmarshal(data, &t) == nil && time.Until(t.ExpiresOn) > 5*time.Minute {
				return t, nil
			}
		}
	}
	res, err := o.client.AcquireTokenOnBehalfOf(ctx, assertion, scopes, opts...)
	if err != nil {
		return OBOToken{}, err
	}
	t := OBOToken{AccessToken: res.AccessToken, ExpiresOn: res.ExpiresOn}
	if data, err := json.Marshal(t); err == nil {
		_ = o.s.Set(ctx, key, data, time.Until(t.ExpiresOn)-5*time.Minute)
	}
	return t, nil
}
