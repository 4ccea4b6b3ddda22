package entratest

import (
	"html/template"
	"net/http"
	"net/url"
)

// The pages of the sign-in endpoints: plain HTML a test's HTTP client or a
// real browser can read and submit.

type signInData struct {
	Tenant  *Tenant
	Request string
	App     string
	Users   []User
	Hint    string
	Prompt  string
}

type permission struct{ Key, Name, Label string }

type consentData struct {
	Tenant      *Tenant
	Request     string
	App         string
	User        User
	Permissions []permission
}

type stepUpData struct {
	Tenant   *Tenant
	Request  string
	App      string
	User     User
	Contexts []string
}

type errorData struct{ Code, Message string }

func page(w http.ResponseWriter, status int, tmpl *template.Template, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Frame-Options", "DENY")
	w.WriteHeader(status)
	_ = tmpl.Execute(w, data)
}

const pageStyle = `<style>
body{font-family:"Segoe UI",system-ui,sans-serif;background:#f2f2f2;margin:0}
main{max-width:440px;margin:60px auto;background:#fff;padding:44px;box-shadow:0 2px 6px rgba(0,0,0,.2)}
h1{font-size:24px;font-weight:600;margin:0 0 16px}
p.fake{font-size:12px;color:#a4262c}
button{display:block;width:100%;text-align:left;padding:12px;margin:8px 0;border:1px solid #8a8886;background:#fff;font-size:15px;cursor:pointer}
button.primary{background:#0067b8;color:#fff;border-color:#0067b8;text-align:center}
label{display:block;margin:10px 0}
</style>`

var signInPage = template.Must(template.New("signin").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in to your account</title>` + pageStyle + `</head>
<body><main>
<p class="fake">entratest: a fake Microsoft Entra tenant for development. No password is asked.</p>
<h1>{{if eq .Prompt "select_account"}}Pick an account{{else}}Sign in{{end}}</h1>
<p>to continue to <strong id="app">{{.App}}</strong> ({{.Tenant.Domain}})</p>
<form method="post">
<input type="hidden" name="request" value="{{.Request}}">
{{range $i, $u := .Users}}<button type="submit" name="user" value="{{$u.ObjectID}}" id="user-{{$i}}">{{$u.Name}}<br><small>{{$u.Username}}</small></button>
{{end}}</form>
</main></body></html>`))

var consentPage = template.Must(template.New("consent").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Permissions requested</title>` + pageStyle + `</head>
<body><main>
<p class="fake">entratest: a fake Microsoft Entra tenant. Untick a permission to refuse it.</p>
<h1>Permissions requested</h1>
<p><strong id="app">{{.App}}</strong> would like to, on behalf of <span id="user">{{.User.Name}}</span>:</p>
<form method="post">
<input type="hidden" name="request" value="{{.Request}}">
{{range .Permissions}}<label><input type="checkbox" name="scope" value="{{.Key}}" checked id="scope-{{.Name}}"> {{.Label}} <small>{{.Name}}</small></label>
{{end}}<button type="submit" name="consent" value="accept" class="primary" id="accept">Accept</button>
<button type="submit" name="consent" value="cancel" id="cancel">Cancel</button>
</form>
</main></body></html>`))

// stepUpPage stands for the Conditional Access policy of an
// authentication context: a second factor, a compliant device.
var stepUpPage = template.Must(template.New("stepup").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Verify your identity</title>` + pageStyle + `</head>
<body><main>
<p class="fake">entratest: a fake Microsoft Entra tenant. No second factor is asked.</p>
<h1 id="step-up">Verify your identity</h1>
<p><strong id="app">{{.App}}</strong> needs more verification of <span id="user">{{.User.Name}}</span> for this action
(Conditional Access authentication context <code id="contexts">{{range $i, $c := .Contexts}}{{if $i}}, {{end}}{{$c}}{{end}}</code>).</p>
<form method="post">
<input type="hidden" name="request" value="{{.Request}}">
<button type="submit" name="stepup" value="verify" class="primary" id="verify">Verify</button>
<button type="submit" name="stepup" value="cancel" id="cancel">Cancel</button>
</form>
</main></body></html>`))

var errorPage = template.Must(template.New("error").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in error</title>` + pageStyle + `</head>
<body><main><h1>Sorry, but we're having trouble signing you in.</h1>
<p id="error" data-code="{{.Code}}">{{.Message}}</p></main></body></html>`))

type formPostData struct {
	Action string
	Params url.Values
}

// formPostPage answers response_mode=form_post: a form the browser posts
// to the redirect URI.
var formPostPage = template.Must(template.New("formpost").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Working...</title></head>
<body onload="document.forms[0].submit()"><form method="post" action="{{.Action}}">
{{range $k, $vs := .Params}}{{range $vs}}<input type="hidden" name="{{$k}}" value="{{.}}">{{end}}{{end}}
<noscript><button type="submit">Continue</button></noscript></form></body></html>`))

var signedOutPage = template.Must(template.New("signedout").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Signed out</title>` + pageStyle + `</head>
<body><main><h1 id="signed-out">You signed out of your account</h1>
<p>It's a good idea to close all browser windows.</p></main></body></html>`))
