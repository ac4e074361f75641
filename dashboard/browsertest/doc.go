// Package browsertest drives the dashboard in a real headless Chromium.
// It is a module of its own so that chromedp, which only this test needs,
// is not a dependency of an app that imports the dashboard.
package browsertest
