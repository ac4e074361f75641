package amqpbackend

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// brokerURLs splits a URL that names several nodes of one cluster,
//
//	amqp://user:pass@10.0.0.1:5672,10.0.0.2:5672,10.0.0.3/vhost?heartbeat=5
//
// into one URL per address, each with the rest of the URL (credentials,
// vhost, query). amqp091 dials one address per URL; a client of a cluster
// must be able to reach another node when the one it used is down. A URL
// with one address comes back as it is.
func brokerURLs(raw string) []string {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return []string{raw} // amqp091 says what is wrong with it
	}
	end := strings.IndexAny(rest, "/?")
	if end < 0 {
		end = len(rest)
	}
	authority, tail := rest[:end], rest[end:]
	user := ""
	if at := strings.LastIndexByte(authority, '@'); at >= 0 {
		user, authority = authority[:at+1], authority[at+1:]
	}
	hosts := strings.Split(authority, ",")
	if len(hosts) == 1 {
		return []string{raw}
	}
	urls := make([]string, 0, len(hosts))
	for _, h := range hosts {
		if h = strings.TrimSpace(h); h != "" {
			urls = append(urls, scheme+"://"+user+h+tail)
		}
	}
	return urls
}

// dialURL opens a connection to the broker, trying each address of
// Config.URL in turn from a random one, so that the processes of a fleet
// spread over the nodes and each finds a live one when a node is down.
// The error names every address's failure.
func (b *Backend) dialURL(ctx context.Context, cfg amqp.Config) (*amqp.Connection, error) {
	urls := brokerURLs(b.cfg.URL)
	if cfg.Dial == nil {
		cfg.Dial = func(network, addr string) (net.Conn, error) {
			d := net.Dialer{Timeout: dialTimeout}
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			// As amqp.DefaultDial: a deadline for the handshake, which
			// amqp091 clears once the connection is open.
			return c, c.SetDeadline(time.Now().Add(dialTimeout))
		}
	}
	first := rand.IntN(len(urls))
	var errs []error
	for i := range urls {
		u := urls[(first+i)%len(urls)]
		conn, err := amqp.DialConfig(u, cfg)
		if err == nil {
			return conn, nil
		}
		if len(urls) > 1 {
			err = fmt.Errorf("%s: %w", redactURL(u), err)
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("amqpbackend: dial: %w", errors.Join(errs...))
}

// redactURL leaves the password out of a URL put in an error.
func redactURL(u string) string {
	scheme, rest, ok := strings.Cut(u, "://")
	at := strings.LastIndexByte(rest, '@')
	if !ok || at < 0 {
		return u
	}
	if user, _, hasPass := strings.Cut(rest[:at], ":"); hasPass {
		return scheme + "://" + user + ":xxxxx" + rest[at:]
	}
	return u
}
