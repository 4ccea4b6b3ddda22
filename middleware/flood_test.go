//go:build !race

package middleware_test

// floodSize is how many unique invalid tokens TestInvalidTokenFloodLeavesTheCacheAlone sends.
const floodSize = 1_000_000
