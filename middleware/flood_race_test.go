//go:build race

package middleware_test

// floodSize is smaller under the race detector, which makes every request
// ten times slower; the full million runs without it.
const floodSize = 100_000
