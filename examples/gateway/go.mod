module github.com/entragate/entragate/examples/gateway

go 1.25.0

require github.com/entragate/entragate v0.0.0

require (
	github.com/MicahParks/jwkset v0.11.4 // indirect
	github.com/MicahParks/keyfunc/v3 v3.9.1 // indirect
	github.com/golang-jwt/jwt/v5 v5.3.1 // indirect
	golang.org/x/text v0.33.0 // indirect
	golang.org/x/time v0.15.0 // indirect
)

replace github.com/entragate/entragate => ../..
