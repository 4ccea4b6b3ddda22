package middleware

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
)

// WriteError writes the standard answer for a refused request, per RFC 6750
// §3: the status, a WWW-Authenticate challenge (for 400, 401 and 403) or
// Retry-After (for 503), and a JSON body {"error": ..., "error_description":
// ...}. It is the default Config.ErrorHandler; custom handlers may call it
// after their own work. A nil error, or one without a Reason, is answered as
// 401 invalid_token; a Status that is not an error status is derived from
// the Reason.
func WriteError(w http.ResponseWriter, r *http.Request, err *Error) {
	writeError(w, answerable(err), realmFrom(r))
}

// answerable is err as it can be answered: a copy, with a Reason and an
// error status.
func answerable(err *Error) *Error {
	if err == nil || err.Reason == nil {
		return newError(ErrMalformedToken, "", nil)
	}
	e := *err
	if e.Status < 400 || e.Status > 599 {
		e.Status, e.Code = statusFor(e.Reason)
	}
	return &e
}

func writeError(w http.ResponseWriter, e *Error, realm string) {
	h := w.Header()
	switch e.Status {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusBadRequest:
		h.Set("WWW-Authenticate", challenge(e, realm))
	case http.StatusServiceUnavailable:
		retry := e.RetryAfterSeconds
		if retry < 1 {
			retry = 1
		}
		h.Set("Retry-After", strconv.Itoa(retry))
	}
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(e.Status)
	code := e.Code
	if code == "" {
		code = "unauthorized"
	}
	_ = json.NewEncoder(w).Encode(struct {
		Error       string `json:"error"`
		Description string `json:"error_description,omitempty"`
	}{code, e.Description})
}

// challenge builds the WWW-Authenticate value. A request without credentials
// gets no error code (RFC 6750 §3: the client may not know auth is needed).
func challenge(e *Error, realm string) string {
	var b strings.Builder
	b.WriteString("Bearer")
	sep := " "
	param := func(name, value string) {
		b.WriteString(sep)
		b.WriteString(name)
		b.WriteString(`="`)
		b.WriteString(quotable(value))
		b.WriteString(`"`)
		sep = ", "
	}
	if e.Code == CodeInsufficientClaims {
		// Entra's claims challenge, in the form Microsoft documents and
		// MSAL reads: realm always (empty for a multi-tenant API), the
		// authorize endpoint, the code and the base64 claims request; no
		// description, which the JSON body carries.
		param("realm", e.claimsRealm)
		if e.AuthorizationURI != "" {
			param("authorization_uri", e.AuthorizationURI)
		}
		param("error", e.Code)
		param("claims", base64.StdEncoding.EncodeToString([]byte(e.Claims)))
		return b.String()
	}
	if realm != "" {
		param("realm", realm)
	}
	if e.Code == "" {
		return b.String()
	}
	param("error", e.Code)
	if e.Description != "" {
		param("error_description", e.Description)
	}
	if e.Code == CodeInsufficientScope && len(e.Scopes) > 0 {
		param("scope", strings.Join(e.Scopes, " "))
	}
	return b.String()
}

// quotable keeps only the characters RFC 6750 allows in its quoted values
// (%x20-21 / %x23-5B / %x5D-7E): no quotes, backslashes or control bytes.
func quotable(s string) string {
	ok := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	b := []byte(s)
	out := b[:0]
	for _, c := range b {
		switch {
		case c == '"':
			out = append(out, '\'')
		case c < 0x20 || c > 0x7e || c == '\\':
			out = append(out, '?')
		default:
			out = append(out, c)
		}
	}
	return string(out)
}

func realmFrom(r *http.Request) string {
	if st := stateFrom(r); st != nil {
		return st.a.s.realm
	}
	return ""
}
