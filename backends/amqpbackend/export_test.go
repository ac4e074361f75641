package amqpbackend

import "time"

// SetRecordPoll sets how often a delivery without a record is tried again,
// until the returned func puts it back. Only while no Backend runs.
func SetRecordPoll(d time.Duration) (restore func()) {
	old := recordPoll
	recordPoll = d
	return func() { recordPoll = old }
}
