// Package demo holds the sample tasks the stock conveyor binary knows and
// the scenario `conveyor demo` plays with them. Real apps define their own
// tasks and build their own worker binary (see examples/appworker).
package demo
