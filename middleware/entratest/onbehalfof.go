package entratest

import (
	"net/http"
	"slices"
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

// The on-behalf-of grant (RFC 7523's jwt-bearer, with
// requested_token_use=on_behalf_of): a middle-tier API exchanges the
// access token it received from a user's client (the assertion) for a
// token to a downstream API, as that user. Entra's rules: the assertion is
// a user's access token this tenant issued, unexpired, for the calling
// app (its aud); the downstream permissions asked are consented for the
// calling app; claims it cannot give without the user (a step-up) are
// interaction_required, with the claims.

const jwtBearerGrant = "urn:ietf:params:oauth:grant-type:jwt-bearer"

func (s *Server) onBehalfOf(w http.ResponseWriter, r *http.Request, t *Tenant, app *App, scopes []scope, asked claimsRequest) {
	f := r.PostForm
	if f.Get("requested_token_use") != "on_behalf_of" {
		writeJSON(w, http.StatusBadRequest, aadError("invalid_request", "AADSTS900144: The request body must contain the following parameter: 'requested_token_use' (on_behalf_of)."))
		return
	}
	claims, problem := s.userAssertion(t, app, f.Get("assertion"))
	if problem != "" {
		writeJSON(w, http.StatusBadRequest, aadError("invalid_grant", problem))
		return
	}
	oid, _ := claims["oid"].(string)
	u, ok := t.user(oid)
	if !ok {
		writeJSON(w, http.StatusBadRequest, aadError("invalid_grant", "AADSTS50013: Assertion is invalid: its user is not in the tenant."))
		return
	}
	var contexts []string
	if list, ok := claims["acrs"].([]any); ok {
		for _, v := range list {
			if id, ok := v.(string); ok {
				contexts = append(contexts, id)
			}
		}
	}
	if asked.missing(contexts) {
		// The user must satisfy it at the client: the middle tier passes
		// the claims back to it.
		writeJSON(w, http.StatusBadRequest, interactionRequired(asked.raw))
		return
	}
	sid, _ := claims["sid"].(string)
	s.userTokens(w, r, grant{tenant: t, user: u, app: app, sid: sid, contexts: contexts}, scopes, "", asked)
}

// userAssertion verifies an on-behalf-of assertion: signed with a key this
// server publishes, issued by this tenant, unexpired, a user's token
// (scp), for app.
func (s *Server) userAssertion(t *Tenant, app *App, raw string) (jwt.MapClaims, string) {
	if raw == "" {
		return nil, "AADSTS900144: The request body must contain the following parameter: 'assertion'."
	}
	keys := s.PublishedKeys()
	var claims jwt.MapClaims
	_, err := jwt.ParseWithClaims(raw, &claims, func(tok *jwt.Token) (any, error) {
		kid, _ := tok.Header["kid"].(string)
		for _, k := range keys {
			if k.ID == kid {
				return k.PublicKey(), nil
			}
		}
		return nil, jwt.ErrTokenUnverifiable
	}, jwt.WithValidMethods([]string{"RS256"}), jwt.WithExpirationRequired())
	switch {
	case err != nil && strings.Contains(err.Error(), "expired"):
		return nil, "AADSTS500133: Assertion is not within its valid time range: it has expired."
	case err != nil:
		return nil, "AADSTS50013: Assertion failed signature validation."
	}
	iss, _ := claims["iss"].(string)
	aud, _ := claims.GetAudience()
	scp, _ := claims["scp"].(string)
	switch {
	case iss != t.IssuerV2() && iss != t.IssuerV1():
		return nil, "AADSTS50013: Assertion is invalid: it was not issued by this tenant."
	case !slices.ContainsFunc(aud, func(a string) bool {
		return strings.EqualFold(a, app.ClientID) || strings.EqualFold(a, "api://"+app.ClientID)
	}):
		return nil, "AADSTS50013: Assertion audience does not match the Client app presenting the assertion. The audience in the assertion was '" +
			strings.Join(aud, " ") + "' and the expected audience is '" + app.ClientID + "' or one of the Application Id URIs of this web API."
	case scp == "":
		return nil, "AADSTS50013: Assertion is an app-only token: the on-behalf-of flow exchanges a user's token."
	}
	return claims, ""
}
