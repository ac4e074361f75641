package redisbackend

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/conveyorhq/conveyor/job"
)

// ErrNotReplicated is returned (wrapping job.ErrOutcomeUnknown) by a write
// that fewer than Config.WaitReplicas replicas acknowledged within
// Config.WaitTimeout: the master has it, but a failover now could lose it,
// so the caller must treat it as neither done nor refused.
var ErrNotReplicated = errors.New("redisbackend: write not acknowledged by enough replicas")

// replicaHook makes every write of the backend wait for replicas: Redis
// replicates asynchronously, so a master killed before its replica has a
// write loses it in the failover, fsync or not. A write here is a script
// (every state change is one) or the queue registry's SADD; it is sent
// with WAIT in one pipeline on one node connection, so the WAIT covers
// exactly that write. It is installed on each node's client: a cluster
// client sends a command to the node that holds its slot, and WAIT must
// go to that node.
type replicaHook struct {
	node     *redis.Client
	replicas int
	timeout  time.Duration
}

// installReplicaHook adds the hook to c, or to every node client of a
// cluster client, present and future.
func installReplicaHook(ctx context.Context, c redis.UniversalClient, replicas int, timeout time.Duration) error {
	add := func(node *redis.Client) { node.AddHook(replicaHook{node: node, replicas: replicas, timeout: timeout}) }
	switch c := c.(type) {
	case *redis.Client:
		add(c)
		return nil
	case *redis.ClusterClient:
		c.OnNewNode(add)
		return c.ForEachShard(ctx, func(_ context.Context, node *redis.Client) error {
			add(node)
			return nil
		})
	default:
		return fmt.Errorf("redisbackend: Config.WaitReplicas needs a *redis.Client or *redis.ClusterClient, not %T", c)
	}
}

func isWrite(cmd redis.Cmder) bool {
	switch strings.ToLower(cmd.Name()) {
	case "evalsha", "eval", "sadd":
		return true
	}
	return false
}

func (replicaHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h replicaHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !isWrite(cmd) {
			return next(ctx, cmd)
		}
		// The pipeline goes through ProcessPipelineHook, which sees the
		// WAIT already there.
		pipe := h.node.Pipeline()
		_ = pipe.Process(ctx, cmd)
		acked := pipe.Do(ctx, "wait", h.replicas, h.timeout.Milliseconds())
		_, _ = pipe.Exec(ctx)
		if err := cmd.Err(); err != nil {
			return err // MOVED, NOSCRIPT and the like reach the cluster client and the script runner as they are
		}
		return h.check(acked)
	}
}

func (h replicaHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		writes := false
		for _, c := range cmds {
			writes = writes || isWrite(c)
		}
		if !writes || strings.EqualFold(cmds[len(cmds)-1].Name(), "wait") {
			return next(ctx, cmds)
		}
		acked := redis.NewCmd(ctx, "wait", h.replicas, h.timeout.Milliseconds())
		if err := next(ctx, append(cmds, acked)); err != nil {
			return err
		}
		if err := h.check(acked); err != nil {
			for _, c := range cmds {
				if isWrite(c) && c.Err() == nil {
					c.SetErr(err)
				}
			}
			return err
		}
		return nil
	}
}

func (h replicaHook) check(acked *redis.Cmd) error {
	n, err := acked.Int()
	if err != nil {
		return fmt.Errorf("%w: WAIT: %w", job.ErrOutcomeUnknown, err)
	}
	if n < h.replicas {
		return fmt.Errorf("%w: %w (%d of %d within %v)", job.ErrOutcomeUnknown, ErrNotReplicated, n, h.replicas, h.timeout)
	}
	return nil
}
