package record

import "time"

// Micros is t in Unix microseconds, 0 for the zero time: the columns that
// hold an optional time (started, finished, unique until) store 0 for none.
func Micros(t time.Time) int64 { return unix(t, time.Time.UnixMicro) }

// FromMicros reads what Micros stored.
func FromMicros(us int64) time.Time { return fromUnix(us, time.UnixMicro) }

// Millis is t in Unix milliseconds, 0 for the zero time, as Micros.
func Millis(t time.Time) int64 { return unix(t, time.Time.UnixMilli) }

// FromMillis reads what Millis stored.
func FromMillis(ms int64) time.Time { return fromUnix(ms, time.UnixMilli) }

func unix(t time.Time, in func(time.Time) int64) int64 {
	if t.IsZero() {
		return 0
	}
	return in(t)
}

func fromUnix(n int64, from func(int64) time.Time) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return from(n)
}

// KeepMillis is a retention in milliseconds for code that runs in the
// server; a negative retention (keep forever) stays negative, as -1.
func KeepMillis(d time.Duration) int64 {
	if d < 0 {
		return -1
	}
	return d.Milliseconds()
}
