package amqpbackend

import (
	"slices"
	"testing"
)

// A URL naming several nodes becomes one URL per node, each with the
// credentials, vhost and query; one naming a single node is kept as is.
func TestBrokerURLs(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
	}{
		{"amqp://guest:guest@127.0.0.1:5672/", []string{"amqp://guest:guest@127.0.0.1:5672/"}},
		{"amqp://u:p@a:5701,b:5702,c/vh?heartbeat=5", []string{
			"amqp://u:p@a:5701/vh?heartbeat=5", "amqp://u:p@b:5702/vh?heartbeat=5", "amqp://u:p@c/vh?heartbeat=5"}},
		{"amqps://a,b", []string{"amqps://a", "amqps://b"}},
		{"amqp://u@a:1, b:2/", []string{"amqp://u@a:1/", "amqp://u@b:2/"}},
		{"not a url", []string{"not a url"}},
	} {
		if got := brokerURLs(c.in); !slices.Equal(got, c.want) {
			t.Errorf("brokerURLs(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	if got := redactURL("amqp://u:secret@a:1/"); got != "amqp://u:xxxxx@a:1/" {
		t.Errorf("redactURL = %q", got)
	}
}
