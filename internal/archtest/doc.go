// Package archtest holds tests that keep the repository's layering as
// docs/architecture.md describes it: which packages may import which, and
// where OS signals are handled. It has no code of its own.
package archtest
