package record

import (
	"crypto/rand"
	"encoding/hex"
)

// Token returns n random bytes in hex, the random part of a lease token:
// a worker that lost its lease can never guess the next holder's, so its
// late Complete fails with job.ErrLeaseLost instead of finishing the job
// under someone else's run.
func Token(n int) string {
	buf := make([]byte, n)
	_, _ = rand.Read(buf) // crypto/rand.Read never fails (Go 1.24)
	return hex.EncodeToString(buf)
}
