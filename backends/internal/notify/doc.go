// Package notify is an in-process event hub that backends without a native
// notification channel use to implement backends.Notifier for listeners in
// the same process.
package notify
