package retry

import "time"

// Attempt describes a failed attempt for a policy to judge.
type Attempt struct {
	Number  int           // 1 for the first attempt
	Elapsed time.Duration // since the job's first attempt started
	Err     error         // what the attempt returned
}

// Policy decides whether and when a failed job runs again. The zero Policy
// retries forever, at once, on every error; use Default or fill all three.
type Policy struct {
	Stop    Stop    // nil: never stop
	Wait    Wait    // nil: no wait
	RetryIf RetryIf // nil: retry on every error
}

// Decision is a policy's verdict on one failed attempt.
type Decision struct {
	Retry bool
	Delay time.Duration // how long to wait before the next attempt
	// Reason says why the job is not retried, for the dead letter.
	Reason string
}

// Decide applies the policy. A Permanent error is never retried.
func (p Policy) Decide(a Attempt) Decision {
	switch {
	case IsPermanent(a.Err):
		return Decision{Reason: "permanent error"}
	case p.RetryIf != nil && !p.RetryIf(a.Err):
		return Decision{Reason: "error is not retryable"}
	case p.Stop != nil && p.Stop(a):
		return Decision{Reason: "retries exhausted"}
	}
	d := Decision{Retry: true}
	if p.Wait != nil {
		d.Delay = max(p.Wait(a), 0)
	}
	return d
}

// Default is the policy a task gets unless it names another: up to 10
// attempts, waiting 1s, 2s, 4s, ... capped at 1h, plus up to 1s of random
// jitter so that jobs failing together do not retry together.
func Default() Policy {
	return Policy{
		Stop: StopAfterAttempt(10),
		Wait: WaitSum(WaitExponential(time.Second, time.Hour), WaitRandom(0, time.Second)),
	}
}
