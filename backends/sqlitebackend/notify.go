package sqlitebackend

import (
	"context"
	"fmt"
	"time"

	"github.com/conveyorhq/conveyor/backends"
)

// Listen implements backends.Notifier. Writes made through this Backend are
// announced at once; writes by other processes (or through EnqueueTx)
// arrive as a backends.Changed event within NotifyPoll.
func (b *Backend) Listen(ctx context.Context, p backends.ListenParams) (<-chan backends.Event, error) {
	if err := b.gate.Check(ctx); err != nil {
		return nil, err
	}
	var err error
	b.pollOnce.Do(func() { err = b.startPolling() })
	if err != nil {
		return nil, fmt.Errorf("sqlitebackend: watch for other processes' writes: %w", err)
	}
	return b.hub.Listen(ctx, p)
}

// startPolling reads PRAGMA data_version once before returning, so that a
// write made right after Listen returns is seen as a change, then watches it.
// The value changes whenever another connection commits, and reading it
// touches no page of the database; it is per connection, hence the
// dedicated one.
func (b *Backend) startPolling() error {
	ctx, cancel := context.WithCancel(context.Background())
	conn, err := b.ro.Conn(ctx)
	if err != nil {
		cancel()
		return err
	}
	version := func() (int64, error) {
		var v int64
		err := conn.QueryRowContext(ctx, `PRAGMA data_version`).Scan(&v)
		return v, err
	}
	last, err := version()
	if err != nil {
		conn.Close()
		cancel()
		return err
	}
	b.polling.Add(1)
	go func() {
		defer b.polling.Done()
		defer cancel()
		defer conn.Close()
		t := time.NewTicker(b.cfg.NotifyPoll)
		defer t.Stop()
		for {
			select {
			case <-b.gate.Closing():
				return
			case <-t.C:
			}
			if v, err := version(); err == nil && v != last {
				last = v
				b.hub.Publish(backends.Event{Kind: backends.Changed})
			}
		}
	}()
	return nil
}
