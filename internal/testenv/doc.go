// Package testenv tells tests where the servers started by scripts/test
// listen, and starts private servers for tests that must stop and restart
// one. It is imported by tests only.
//
// A test that needs a server fails when the server is not there, because CI
// must never skip a backend silently. To run the other tests without
// servers, set CONVEYOR_SKIP_SERVERS=1: those tests then skip, and say so.
package testenv
