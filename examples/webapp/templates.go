package main

import (
	"html/template"
	"net/http"
)

// pageData is what the pages show. Tokens are never part of it.
type pageData struct {
	Session    *session
	Message    string
	Detail     string
	SignIn     bool // offer to sign in again
	Retry      bool // offer to sign out again
	Graph      map[string]any
	GraphError string
	API        *apiResult
}

type apiResult struct {
	// StepUp: the API asked for a new sign-in (a claims challenge), which
	// the page offers; Consent: for consent.
	StepUp, Consent bool
	Heading         string
	URL             string
	Status          int
	Body            string
	Explanation     string
}

func render(w http.ResponseWriter, status int, t *template.Template, data pageData) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_ = t.ExecuteTemplate(w, "page", data)
}

const layout = `{{define "page"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Contoso web app</title>
<style>
body{font-family:system-ui,sans-serif;max-width:760px;margin:40px auto;padding:0 16px;color:#222;line-height:1.4}
nav{display:flex;flex-wrap:wrap;align-items:center;gap:8px 16px;margin-bottom:16px}
nav a,nav button{font:inherit;line-height:1.4;padding:0;margin:0}
nav form{display:inline;margin:0}
nav button{background:none;border:none;color:#0645ad;text-decoration:underline;cursor:pointer}
table{border-collapse:collapse;width:100%;table-layout:fixed}
td{border:1px solid #ccc;padding:4px 8px;vertical-align:top;overflow-wrap:anywhere}
td:first-child{width:35%}
pre{background:#f4f4f4;padding:12px;overflow:auto;white-space:pre-wrap;overflow-wrap:anywhere}
code{overflow-wrap:anywhere}
.explain{background:#fff4ce;border-left:4px solid #c19c00;padding:12px}
.ok{background:#dff6dd;border-left:4px solid #107c10;padding:12px}
</style></head>
<body>
<nav><a href="/" id="nav-home">Home</a>{{if .Session.AccountID}}<a href="/profile" id="nav-profile">Profile</a><a href="/call-api" id="nav-api">Call the API</a><a href="/confidential" id="nav-confidential">Confidential data</a><a href="/chain" id="nav-chain">Calling other APIs</a>
<form method="post" action="/logout"><button type="submit" id="sign-out">Sign out</button></form>{{end}}</nav>
{{template "body" .}}
</body></html>{{end}}`

func page(body string) *template.Template {
	return template.Must(template.Must(template.New("layout").Parse(layout)).New("body").Parse(body))
}

var homePage = page(`{{define "body"}}<h1>Contoso web app</h1>
{{if .Session.AccountID}}<p id="greeting">Signed in as <strong>{{index .Session.Claims "name"}}</strong>.</p>
{{else}}<p>This app signs you in with Microsoft Entra ID, shows your profile from your ID token and Microsoft Graph, and calls a protected API with your access token.</p>
<p><a href="/login" id="sign-in">Sign in</a></p>{{end}}{{end}}`)

var profilePage = page(`{{define "body"}}<h1 id="profile">Hello, {{index .Session.Claims "name"}}</h1>
<h2>Your verified ID token</h2>
<table id="id-claims">{{range $k, $v := .Session.Claims}}<tr><td>{{$k}}</td><td id="claim-{{$k}}">{{$v}}</td></tr>{{end}}</table>
<h2>Microsoft Graph /me</h2>
{{if .GraphError}}<p class="explain" id="graph-error">{{.GraphError}}</p>{{else}}<table id="graph-me">
<tr><td>displayName</td><td id="graph-displayName">{{index .Graph "displayName"}}</td></tr>
<tr><td>userPrincipalName</td><td>{{index .Graph "userPrincipalName"}}</td></tr>
<tr><td>id</td><td>{{index .Graph "id"}}</td></tr>
<tr><td>mail</td><td>{{index .Graph "mail"}}</td></tr></table>{{end}}
<p><a href="/call-api" id="call-api">Call the protected API</a> ·
<a href="/confidential" id="confidential">Read confidential data</a> (the API asks you to verify your identity first)</p>{{end}}`)

var apiPage = page(`{{define "body"}}<h1 id="api-heading">{{.API.Heading}}</h1>
<p>GET <code>{{.API.URL}}</code> with your access token{{if .API.Status}}: <strong id="api-status">{{.API.Status}}</strong>{{end}}</p>
{{if eq .API.Status 200}}<div class="ok" id="api-ok">The API accepted your token and answered:</div>{{end}}
{{if .API.Explanation}}<p class="explain" id="api-explanation">{{.API.Explanation}}</p>{{end}}
{{if .API.StepUp}}<form method="post" action="/step-up"><p>{{if .API.Consent}}The API needs your consent again to act as you.{{else}}This data needs you to verify your identity again.{{end}}
<button type="submit" id="continue-step-up">{{if .API.Consent}}Review the permissions{{else}}Verify my identity{{end}}</button></p></form>{{end}}
{{if .API.Body}}<pre id="api-body">{{.API.Body}}</pre>{{end}}{{end}}`)

var errorPage = page(`{{define "body"}}<h1>{{if .Session.AccountID}}Not done{{else}}Not signed in{{end}}</h1>
<p class="explain" id="error">{{.Message}}</p>{{if .Detail}}<p><small id="error-detail">{{.Detail}}</small></p>{{end}}
{{if .Retry}}<form method="post" action="/logout"><button type="submit" id="sign-out-again">Sign out</button></form>{{end}}
<p>{{if .SignIn}}<a href="/login" id="sign-in-again">Sign in again</a> · {{end}}<a href="/">Home</a></p>{{end}}`)

var signedOutPage = page(`{{define "body"}}<h1>Signed out</h1>
<p class="ok" id="signed-out">You are signed out of this app and of your Microsoft account's session here.</p>
<p><a href="/login" id="sign-in">Sign in again</a></p>{{end}}`)
