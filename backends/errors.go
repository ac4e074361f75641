package backends

import (
	"fmt"

	"github.com/conveyorhq/conveyor/job"
)

// QueueFullError builds the error a backend returns when a batch would push
// queue past its bound.
func QueueFullError(queue string, depth, adding, bound int) error {
	return fmt.Errorf("%w: queue %q has %d unfinished jobs, adding %d would pass its bound of %d",
		job.ErrQueueFull, queue, depth, adding, bound)
}

// PoisonReason is the error recorded when Reserve dead-letters a job that
// was delivered MaxDeliveries times without finishing.
func PoisonReason(deliveries int) string {
	return fmt.Sprintf("poison message: delivered %d times without finishing (max deliveries reached; its worker crashed or lost the lease each time)", deliveries)
}
