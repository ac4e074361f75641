package backends

import "time"

// Default retention of finished jobs, shared by the backends that prune.
const (
	DefaultKeepDone = 24 * time.Hour     // done and cancelled jobs, with their results
	DefaultKeepDead = 7 * 24 * time.Hour // dead letters, for inspection and replay
)

// DefaultRetention fills zero retentions with the defaults; a negative one
// (keep forever) stays.
func DefaultRetention(keepDone, keepDead *time.Duration) {
	if *keepDone == 0 {
		*keepDone = DefaultKeepDone
	}
	if *keepDead == 0 {
		*keepDead = DefaultKeepDead
	}
}
