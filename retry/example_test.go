package retry_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/conveyorhq/conveyor/retry"
)

var errRateLimited = errors.New("rate limited")

func ExamplePolicy() {
	// Retry only rate limits: wait 1s, 2s, 4s ... up to 30s, for at most
	// 5 attempts or 10 minutes, whichever comes first.
	p := retry.Policy{
		Stop:    retry.StopAny(retry.StopAfterAttempt(5), retry.StopAfterElapsed(10*time.Minute)),
		Wait:    retry.WaitExponential(time.Second, 30*time.Second),
		RetryIf: retry.IfErrorIs(errRateLimited),
	}
	for n := 1; n <= 4; n++ {
		d := p.Decide(retry.Attempt{Number: n, Elapsed: time.Duration(n) * time.Second, Err: errRateLimited})
		fmt.Println(n, d.Retry, d.Delay)
	}
	fmt.Println(p.Decide(retry.Attempt{Number: 5, Err: errRateLimited}).Reason)
	fmt.Println(p.Decide(retry.Attempt{Number: 1, Err: errors.New("bad input")}).Reason)
	// Output:
	// 1 true 1s
	// 2 true 2s
	// 3 true 4s
	// 4 true 8s
	// retries exhausted
	// error is not retryable
}
