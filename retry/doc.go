// Package retry holds tenacity-style retry policies for jobs: a Policy is
// composed of a Stop condition, a Wait strategy and a RetryIf predicate, each
// a pure function of the Attempt (attempt number, time since the first
// attempt, the error), so policies are easy to build, combine and test.
//
// Handlers steer single outcomes with errors: Permanent(err) skips retries
// and sends the job to dead letter; Snooze(d) reschedules it without using an
// attempt.
//
// These policies decide when a failed job runs again. For retries inside a
// running process (reconnecting to a broker, a transient backend error),
// Conveyor uses github.com/avast/retry-go.
package retry
