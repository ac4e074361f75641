package faulttest

import (
	"bytes"
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// Proxy forwards TCP connections on loopback to a server, and can lose a
// reply the way a crash does: the request reached the server and was
// applied, the answer never came back, and the server is unreachable
// afterwards until Heal.
type Proxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	marker []byte // cut the reply to the request that carries it
	stay   bool   // after the cut, stay down until Heal
	down   bool   // refuse connections: the server "is gone"
	conns  map[net.Conn]struct{}
}

// NewProxy listens on a free loopback port and forwards to target
// ("host:port"). It closes with the test.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// Addr is where clients connect.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// CutReplyTo arms the proxy: the next request that carries marker (within
// one read; requests here are small) is forwarded, the server's reply to
// it is dropped and every connection is closed. With stayDown, new
// connections are refused too until Heal, as while a server restarts.
func (p *Proxy) CutReplyTo(marker string, stayDown bool) {
	p.mu.Lock()
	p.marker, p.stay = []byte(marker), stayDown
	p.mu.Unlock()
}

// Cut closes every connection now and refuses new ones until Heal: the
// network between client and server is gone.
func (p *Proxy) Cut() {
	p.mu.Lock()
	p.stay = true
	p.mu.Unlock()
	p.goDown()
}

// Heal lets connections through again.
func (p *Proxy) Heal() {
	p.mu.Lock()
	p.down, p.marker = false, nil
	p.mu.Unlock()
}

func (p *Proxy) close() {
	_ = p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		_ = c.Close()
	}
}

func (p *Proxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.serve(client)
	}
}

func (p *Proxy) serve(client net.Conn) {
	p.mu.Lock()
	down := p.down
	p.mu.Unlock()
	if down {
		_ = client.Close()
		return
	}
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		_ = client.Close()
		return
	}
	p.track(client, server)
	var cutNext atomic.Bool // set by the request direction, read by the reply's
	go func() {             // client to server: watch for the marker
		buf := make([]byte, 64<<10)
		for {
			n, err := client.Read(buf)
			if n > 0 {
				p.mu.Lock()
				if len(p.marker) > 0 && bytes.Contains(buf[:n], p.marker) {
					p.marker = nil
					cutNext.Store(true)
				}
				p.mu.Unlock()
				if _, werr := server.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		_ = server.Close()
	}()
	// Server to client: drop the armed reply and take everything down.
	buf := make([]byte, 64<<10)
	for {
		n, err := server.Read(buf)
		if n > 0 {
			if cutNext.Load() {
				p.goDown()
				return
			}
			if _, werr := client.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	_ = client.Close()
}

func (p *Proxy) track(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
}

// goDown closes every connection and, if armed so, refuses new ones.
func (p *Proxy) goDown() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = p.stay
	for c := range p.conns {
		_ = c.Close()
		delete(p.conns, c)
	}
}
