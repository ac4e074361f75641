// Package sentryhook reports a worker daemon's failed attempts and dead
// letters to Sentry: plug OnError into daemon.App.OnError. It is a module
// of its own, so that sentry-go is a dependency only of the apps that use
// it.
//
//	app := daemon.App{..., OnError: sentryhook.OnError(nil)} // after sentry.Init
package sentryhook
