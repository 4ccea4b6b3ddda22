package claims

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// The other side of a claims challenge: a client (a web app, a daemon, an
// API calling another API) that gets 401 with error="insufficient_claims"
// reads the claims request from the WWW-Authenticate header and asks Entra
// for a new token carrying those claims, e.g. with MSAL for Go's
// WithClaims(challenge.Claims), then retries once.

// ClaimsChallenge is Entra's claims challenge, as an API sends it in
// WWW-Authenticate:
//
//	Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize",
//	    error="insufficient_claims", claims="eyJhY2Nlc3NfdG9rZW4iOnsiYWNycyI6eyJlc3NlbnRpYWwiOnRydWUsInZhbHVlIjoiYzEifX19"
type ClaimsChallenge struct {
	// Claims is the decoded claims request, a JSON object such as
	// {"access_token":{"acrs":{"essential":true,"value":"c1"}}}: what
	// MSAL's WithClaims takes.
	Claims string
	// Scheme is the challenge's scheme, "Bearer" or "PoP".
	Scheme string
	// Realm and AuthorizationURI are the challenge's realm and
	// authorization_uri, empty when absent.
	Realm, AuthorizationURI string
}

// ErrNoClaimsChallenge: no insufficient_claims challenge among the values.
var ErrNoClaimsChallenge = errors.New("no claims challenge in WWW-Authenticate")

// ParseClaimsChallenge finds the claims challenge among the values of a
// response's WWW-Authenticate headers (resp.Header.Values("WWW-Authenticate")),
// which may hold several challenges each (RFC 9110 §11.6.1): the first
// Bearer or PoP challenge whose error is insufficient_claims. A value that
// cannot be read (another scheme's, a proxy's) is skipped, and reported
// only when no claims challenge is found. Its claims
// parameter is base64, standard or URL-safe, with or without padding, and
// must decode to a JSON object.
//
// The error is ErrNoClaimsChallenge when there is none, and describes the
// problem when a header cannot be parsed or the claims are not a claims
// request; either way the client has nothing to retry with.
func ParseClaimsChallenge(values ...string) (ClaimsChallenge, error) {
	var malformed error // of a value that could not be read: reported if nothing else is found
	for _, v := range values {
		challenges, err := parseChallenges(v)
		if err != nil {
			if malformed == nil {
				malformed = err
			}
			continue
		}
		for _, ch := range challenges {
			if !strings.EqualFold(ch.scheme, "Bearer") && !strings.EqualFold(ch.scheme, "PoP") {
				continue
			}
			if !strings.EqualFold(ch.params["error"], "insufficient_claims") {
				continue
			}
			raw, ok := ch.params["claims"]
			if !ok {
				return ClaimsChallenge{}, errors.New("claims: an insufficient_claims challenge without a claims parameter")
			}
			request, err := decodeClaimsRequest(raw)
			if err != nil {
				return ClaimsChallenge{}, err
			}
			return ClaimsChallenge{Claims: request, Scheme: ch.scheme, Realm: ch.params["realm"], AuthorizationURI: ch.params["authorization_uri"]}, nil
		}
	}
	if malformed != nil {
		return ClaimsChallenge{}, malformed
	}
	return ClaimsChallenge{}, ErrNoClaimsChallenge
}

// decodeClaimsRequest decodes base64 in any of its four common forms and
// checks that it is a JSON object.
func decodeClaimsRequest(raw string) (string, error) {
	trimmed := strings.TrimRight(raw, "=")
	var b []byte
	var err error
	if strings.ContainsAny(trimmed, "-_") {
		b, err = base64.RawURLEncoding.DecodeString(trimmed)
	} else {
		b, err = base64.RawStdEncoding.DecodeString(trimmed)
	}
	if err != nil {
		return "", fmt.Errorf("claims: the challenge's claims are not base64: %w", err)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(b, &obj); err != nil || obj == nil {
		return "", fmt.Errorf("claims: the challenge's claims are not a JSON object: %s", b)
	}
	return string(b), nil
}

// challenge is one challenge of a WWW-Authenticate value: a scheme and its
// parameters (names in lower case, values unquoted), or a token68.
type challenge struct {
	scheme  string
	params  map[string]string
	token68 string
}

// parseChallenges reads a WWW-Authenticate value (RFC 9110 §11.6.1):
//
//	challenge  = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
//	auth-param = token BWS "=" BWS ( token / quoted-string )
//
// separated by commas; a token followed by "=" continues the challenge, a
// token followed by a space or a comma starts a new one.
func parseChallenges(v string) ([]challenge, error) {
	p := &headerScanner{s: v}
	var out []challenge
	for {
		p.skipListSeparators()
		if p.done() {
			return out, nil
		}
		name := p.token()
		if name == "" {
			return nil, p.fail("an auth-scheme or parameter name")
		}
		p.skipSpace()
		if p.peek() == '=' && len(out) > 0 && !p.isToken68End() {
			value, err := p.paramValue()
			if err != nil {
				return nil, err
			}
			last := &out[len(out)-1]
			key := strings.ToLower(name)
			if _, dup := last.params[key]; dup {
				return nil, fmt.Errorf("claims: WWW-Authenticate repeats the parameter %s", key)
			}
			last.params[key] = value
			continue
		}
		ch := challenge{scheme: name, params: map[string]string{}}
		if t68 := p.token68(); t68 != "" {
			ch.token68 = t68
		}
		out = append(out, ch)
	}
}

// headerScanner walks a header value.
type headerScanner struct {
	s   string
	pos int
}

func (p *headerScanner) done() bool { return p.pos >= len(p.s) }

func (p *headerScanner) peek() byte {
	if p.done() {
		return 0
	}
	return p.s[p.pos]
}

func (p *headerScanner) fail(want string) error {
	return fmt.Errorf("claims: malformed WWW-Authenticate at byte %d: want %s", p.pos, want)
}

func (p *headerScanner) skipSpace() {
	for !p.done() && (p.s[p.pos] == ' ' || p.s[p.pos] == '\t') {
		p.pos++
	}
}

func (p *headerScanner) skipListSeparators() {
	for !p.done() && (p.s[p.pos] == ' ' || p.s[p.pos] == '\t' || p.s[p.pos] == ',') {
		p.pos++
	}
}

// isTokenChar: RFC 9110 tchar.
func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

func (p *headerScanner) token() string {
	start := p.pos
	for !p.done() && isTokenChar(p.s[p.pos]) {
		p.pos++
	}
	return p.s[start:p.pos]
}

// isToken68End reports whether, at an "=", what follows is only more "="
// and then the end or a comma: a token68's padding (Basic's credentials),
// not a parameter.
func (p *headerScanner) isToken68End() bool {
	i := p.pos
	for i < len(p.s) && p.s[i] == '=' {
		i++
	}
	for i < len(p.s) && (p.s[i] == ' ' || p.s[i] == '\t') {
		i++
	}
	return i == len(p.s) || p.s[i] == ','
}

// token68 reads a token68 after a scheme, if one is there (a word not
// followed by "=" and a value).
func (p *headerScanner) token68() string {
	save := p.pos
	p.skipSpace()
	start := p.pos
	for !p.done() && (isTokenChar(p.s[p.pos]) || p.s[p.pos] == '/') {
		p.pos++
	}
	word := p.s[start:p.pos]
	for !p.done() && p.s[p.pos] == '=' {
		p.pos++
	}
	p.skipSpace()
	if word != "" && (p.done() || p.peek() == ',') {
		return p.s[start:p.pos]
	}
	p.pos = save // a parameter, read by the caller
	return ""
}

// paramValue reads "=" BWS ( token / quoted-string ).
func (p *headerScanner) paramValue() (string, error) {
	p.pos++ // "="
	p.skipSpace()
	if p.peek() != '"' {
		v := p.token()
		if v == "" {
			return "", p.fail("a parameter value")
		}
		return v, nil
	}
	p.pos++
	var b strings.Builder
	for !p.done() {
		c := p.s[p.pos]
		p.pos++
		switch c {
		case '"':
			return b.String(), nil
		case '\\':
			if p.done() {
				return "", p.fail("a character after a backslash")
			}
			b.WriteByte(p.s[p.pos])
			p.pos++
		default:
			b.WriteByte(c)
		}
	}
	return "", p.fail(`a closing quote`)
}
