module github.com/entragate/entragate

go 1.25.0

require (
	github.com/MicahParks/jwkset v0.11.4
	github.com/MicahParks/keyfunc/v3 v3.9.1
	github.com/go-chi/chi/v5 v5.5.0
	github.com/golang-jwt/jwt/v5 v5.3.1
	golang.org/x/text v0.33.0
)

require golang.org/x/time v0.15.0 // indirect
