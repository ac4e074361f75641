package retry

import "errors"

// RetryIf reports whether an error is worth retrying.
type RetryIf func(err error) bool

// IfErrorIs retries errors that match any target by errors.Is.
func IfErrorIs(targets ...error) RetryIf {
	return func(err error) bool {
		for _, t := range targets {
			if errors.Is(err, t) {
				return true
			}
		}
		return false
	}
}

// IfErrorAs retries errors that have an error of type T in their chain.
func IfErrorAs[T error]() RetryIf {
	return func(err error) bool {
		var target T
		return errors.As(err, &target)
	}
}

// IfFunc retries errors for which pred is true.
func IfFunc(pred func(error) bool) RetryIf { return RetryIf(pred) }

// Not inverts a predicate: Not(IfErrorIs(ErrBadInput)) retries all but bad input.
func Not(r RetryIf) RetryIf { return func(err error) bool { return !r(err) } }

// IfAny retries when any predicate does.
func IfAny(rs ...RetryIf) RetryIf {
	return func(err error) bool {
		for _, r := range rs {
			if r(err) {
				return true
			}
		}
		return false
	}
}
