//go:build !race

package sqlitebackend_test

// fairBacklog: see race_test.go. Zero is the suite's default, 50,000.
const fairBacklog = 0
