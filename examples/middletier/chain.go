package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"
	msalerrors "github.com/AzureAD/microsoft-authentication-library-for-go/apps/errors"

	"github.com/entragate/entragate/claims"
	"github.com/entragate/entragate/examples/internal/demo"
	entragate "github.com/entragate/entragate/middleware"
	"github.com/entragate/entragate/middleware/tokencache"
)

// oboTokens gets on-behalf-of tokens: shared by the instances through the
// token cache when there is one, MSAL's memory cache alone otherwise.
type oboTokens interface {
	Token(ctx context.Context, assertion string, scopes []string, opts ...confidential.AcquireOnBehalfOfOption) (tokencache.OBOToken, error)
}

// msalOnly is oboTokens without a shared cache.
type msalOnly struct{ client confidential.Client }

func (m msalOnly) Token(ctx context.Context, assertion string, scopes []string, opts ...confidential.AcquireOnBehalfOfOption) (tokencache.OBOToken, error) {
	res, err := m.client.AcquireTokenOnBehalfOf(ctx, assertion, scopes, opts...)
	return tokencache.OBOToken{AccessToken: res.AccessToken, ExpiresOn: res.ExpiresOn}, err
}

// chain is the middle tier's route: it calls the downstream API and
// Microsoft Graph as the caller, with on-behalf-of tokens for the
// caller's own access token.
type chain struct {
	auth            *entragate.Authenticator
	tokens          oboTokens
	downstreamURL   string
	downstreamScope string
	graphURL        string
	client          *http.Client
	logger          *slog.Logger
}

func (ch *chain) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", demo.Healthz)
	mux.Handle("GET /readyz", demo.Readyz(ch.auth))
	mux.Handle("GET /chain", ch.auth.RequireAuth(entragate.RequireAnyScope(middleScope)(http.HandlerFunc(ch.serve))))
	return mux
}

// middleScope is the middle tier's delegated permission.
const middleScope = "access_as_user"

func (ch *chain) serve(w http.ResponseWriter, r *http.Request) {
	c, _ := claims.FromContext(r.Context())
	// The caller's own token is the assertion: RequireAuth checked it.
	assertion := strings.TrimSpace(r.Header.Get("Authorization")[len("Bearer "):])
	answer := map[string]any{"caller": demo.CallerOf(c)}
	for _, call := range []struct{ name, url, scope string }{
		{"downstream", ch.downstreamURL + "/secure-data", ch.downstreamScope},
		{"graph_me", ch.graphURL + "/v1.0/me", "https://graph.microsoft.com/User.Read"},
	} {
		tok, err := ch.tokens.Token(r.Context(), assertion, []string{call.scope})
		if err != nil {
			ch.refuse(w, r, c, err)
			return
		}
		body, status, challenges, err := ch.get(r.Context(), call.url, tok.AccessToken)
		if status == http.StatusUnauthorized {
			// The downstream API asks for claims its token lacks (a
			// step-up): only the client can get them, with a new sign-in,
			// so the challenge goes back to it, as Microsoft's guidance
			// for middle tiers has it.
			if cc, err := claims.ParseClaimsChallenge(challenges...); err == nil && cc.Claims != "" {
				ch.auth.WriteError(w, ch.auth.ClaimsChallenge(c, cc.Claims, call.name+" asks for more claims than your token carries: sign in again with them"))
				return
			}
		}
		if err != nil || status != http.StatusOK {
			demo.WriteJSON(w, http.StatusBadGateway, map[string]any{"error": "downstream_failed",
				"error_description": fmt.Sprintf("%s answered %d", call.name, status)})
			return
		}
		answer[call.name] = body
	}
	demo.WriteJSON(w, http.StatusOK, answer)
}

// refuse answers a failed on-behalf-of request. When Entra needs the user
// (interaction_required, consent_required, or the claims of a
// Conditional Access policy), the caller gets the claims challenge a
// client can act on by signing the user in again; anything else is 503
// (Entra unreachable), never a token from a cache.
func (ch *chain) refuse(w http.ResponseWriter, r *http.Request, c *claims.Claims, err error) {
	ch.logger.WarnContext(r.Context(), "on-behalf-of request failed", slog.String("error", err.Error()))
	var ce msalerrors.CallErr
	if errors.As(err, &ce) && ce.Resp != nil && ce.Resp.Body != nil {
		var e struct {
			Error    string `json:"error"`
			Suberror string `json:"suberror"`
			Claims   string `json:"claims"`
			Codes    []int  `json:"error_codes"`
		}
		b, _ := io.ReadAll(io.LimitReader(ce.Resp.Body, 64<<10))
		if json.Unmarshal(b, &e) == nil && needsUser(e.Error, e.Suberror) {
			desc := "the middle tier cannot act as you without your consent or a new sign-in: sign in again"
			ch.auth.WriteError(w, ch.auth.ClaimsChallenge(c, e.Claims, desc))
			return
		}
		if e.Error == "invalid_grant" {
			// The token cannot be exchanged, and retrying it never will:
			// it expired within the clock skew RequireAuth allows
			// (AADSTS500133), or the grant behind it was revoked
			// (AADSTS50173, a password change). The client gets a new one.
			ch.auth.WriteError(w, &entragate.Error{Reason: entragate.ErrTokenExpired, Status: http.StatusUnauthorized, Code: "invalid_token",
				Description: "the token cannot be exchanged for the downstream API (expired, or its grant revoked): get a new one"})
			return
		}
	}
	w.Header().Set("Retry-After", "5")
	demo.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "temporarily_unavailable",
		"error_description": "the middle tier cannot get a token for the downstream API right now"})
}

// needsUser reports whether Entra's on-behalf-of error asks for the user:
// what the client, not the middle tier, must resolve.
func needsUser(code, suberror string) bool {
	return code == "interaction_required" || code == "consent_required" ||
		code == "invalid_grant" && (suberror == "consent_required" || suberror == "basic_action" || suberror == "additional_action")
}

// get calls url with token: the JSON answer, its status, and its
// WWW-Authenticate challenges.
func (ch *chain) get(ctx context.Context, url, token string) (any, int, []string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := ch.client.Do(req)
	if err != nil {
		return nil, 0, nil, err
	}
	defer resp.Body.Close()
	challenges := resp.Header.Values("WWW-Authenticate")
	var v any
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&v); err != nil {
		return nil, resp.StatusCode, challenges, err
	}
	return v, resp.StatusCode, challenges, nil
}
