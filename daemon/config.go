package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/conveyorhq/conveyor/flow"
	"github.com/conveyorhq/conveyor/worker"
)

// ErrConfig is wrapped by every error about a bad configuration value, from
// any source: a flag, an environment variable or the config file.
var ErrConfig = errors.New("daemon: bad configuration")

// Config is the daemon's whole configuration. Each field is one key of
// the config file, one CONVEYOR_* environment variable and one flag (the
// package doc lists them); zero values mean the stated default.
type Config struct {
	// DB is the backend: a SQLite file, or a URL that backends/open
	// accepts. Default "conveyor.db".
	DB string
	// Queues to work, highest priority first, each with an optional cap on
	// its running jobs and a weight. Default the one queue "default".
	Queues []worker.QueueConfig
	// Fair lists the queues whose tenants (the jobs' keys) are served
	// round-robin (worker.QueueConfig.Fair), each with its groups' weights
	// (FairWeights; none: every group 1). Each must be one of Queues.
	// Default none.
	Fair map[string]map[string]int
	// StrictPriority drains earlier queues first. Default false (weighted).
	StrictPriority bool
	// Concurrency is the most jobs running at once in one process.
	// Default 10.
	Concurrency int
	// Lease is how long a reservation lasts without a heartbeat. Default 30s.
	Lease time.Duration
	// JobTimeout bounds an attempt of a task that sets no timeout. Default 30m.
	JobTimeout time.Duration
	// Drain is how long running jobs may take to finish after SIGTERM
	// before they are cancelled and released. Default 30s.
	Drain time.Duration
	// Breakers configure circuit breakers by name. Default none (each
	// breaker gets worker.BreakerConfig's defaults).
	Breakers map[string]worker.BreakerConfig
	// Limits override flow limits on every worker of the backend
	// (flow.Override): set at start and on SIGHUP, and removed when a
	// reload no longer lists them. Default none (the declared limits).
	Limits []flow.Override
	// HTTP is the address serving /healthz, /readyz and /metrics, and,
	// for an App with tasks, the producer HTTP API at /v1/ (package
	// httpapi). Default "" (none).
	HTTP string
	// APIToken is the bearer token the producer API asks for. Default ""
	// (the API answers requests from loopback only).
	APIToken string
	// LogFormat is "text" or "json". Default "text".
	LogFormat string
	// LogLevel is the lowest level logged. Default info.
	LogLevel slog.Level
	// Processes, when above 0, runs that many worker processes under a
	// supervisor in this one. Default 0: the worker runs in this process.
	Processes int
	// MaxJobs recycles a supervised worker process after it has finished
	// that many jobs. Default 0: never.
	MaxJobs int
	// MaxRSS recycles a supervised worker process whose resident memory
	// passes it, in bytes. Default 0: never.
	MaxRSS int64
	// SlowJob logs a warning for each job still running past it.
	// Default 0: never.
	SlowJob time.Duration
}

// kind is the TOML type of a key's value in the config file.
type kind int

const (
	kindString kind = iota
	kindInt
	kindBool
	kindList // an array of strings; a comma-separated list in flags and environment
)

// setting is one key, defined once for all three sources.
type setting struct {
	key  string // TOML key and flag name; the environment variable is envName(key)
	kind kind
	def  string // the default, as it is written in flags
	help string
	// live keys take effect on SIGHUP; the others need a restart.
	live bool
	set  func(c *Config, v string) error
	get  func(c *Config) string // the value in flag syntax, to compare and log
}

// settings lists every key, in the order the documentation gives them.
var settings = []setting{
	{key: "db", def: "conveyor.db", help: "backend: a SQLite file or a postgres://, redis://, redis+cluster:// or amqp://...?store= URL",
		set: func(c *Config, v string) error { c.DB = v; return nil }, get: func(c *Config) string { return c.DB }},
	{key: "queues", kind: kindList, def: "default", live: true,
		help: "queues, highest priority first, each NAME[:CONCURRENCY[:WEIGHT]]",
		set:  func(c *Config, v string) (err error) { c.Queues, err = parseQueues(v); return err },
		get:  func(c *Config) string { return formatQueues(c.Queues) }},
	{key: "fair", kind: kindList, def: "", live: true,
		help: "queues served round-robin across tenants (the jobs' keys), each QUEUE[:GROUP=WEIGHT...] (e.g. reports:enterprise=3)",
		set:  func(c *Config, v string) (err error) { c.Fair, err = parseFair(v); return err },
		get:  func(c *Config) string { return FormatFair(c.Fair) }},
	{key: "strict", kind: kindBool, def: "false", live: true, help: "drain earlier queues first instead of weighted order",
		set: func(c *Config, v string) (err error) { c.StrictPriority, err = strconv.ParseBool(v); return err },
		get: func(c *Config) string { return strconv.FormatBool(c.StrictPriority) }},
	{key: "concurrency", kind: kindInt, def: "10", live: true, help: "most jobs running at once in one process",
		set: func(c *Config, v string) error { return positive(&c.Concurrency, v) },
		get: func(c *Config) string { return strconv.Itoa(c.Concurrency) }},
	{key: "lease", def: "30s", live: true, help: "lease length; a crashed worker's jobs come back after it",
		set: func(c *Config, v string) error { return duration(&c.Lease, v, false) },
		get: func(c *Config) string { return c.Lease.String() }},
	{key: "job-timeout", def: "30m", live: true, help: "bound of one attempt of a task that sets no timeout",
		set: func(c *Config, v string) error { return duration(&c.JobTimeout, v, false) },
		get: func(c *Config) string { return c.JobTimeout.String() }},
	{key: "drain", def: "30s", live: true, help: "on SIGTERM, how long running jobs may take before they are cancelled and released",
		set: func(c *Config, v string) error { return duration(&c.Drain, v, true) },
		get: func(c *Config) string { return c.Drain.String() }},
	{key: "breakers", kind: kindList, def: "", live: true,
		help: "circuit breakers, each NAME:FAILURES:OPEN-FOR (e.g. smtp:10:1m)",
		set:  func(c *Config, v string) (err error) { c.Breakers, err = parseBreakers(v); return err },
		get:  func(c *Config) string { return formatBreakers(c.Breakers) }},
	{key: "limits", kind: kindList, def: "", live: true,
		help: "flow limit overrides for every worker, each KIND:NAME=LIMIT[/PER[:BURST]] (e.g. rate:queue:email=100/1m, concurrency:shopify.sync=3)",
		set:  func(c *Config, v string) (err error) { c.Limits, err = parseLimits(v); return err },
		get:  func(c *Config) string { return formatLimits(c.Limits) }},
	{key: "http", def: "", help: "address serving /healthz, /readyz, /metrics and the producer API at /v1/ (empty: none)",
		set: func(c *Config, v string) error { c.HTTP = v; return nil }, get: func(c *Config) string { return c.HTTP }},
	{key: "api-token", def: "", help: "bearer token of the producer API on the http address (empty: it answers loopback only)",
		set: func(c *Config, v string) error { c.APIToken = v; return nil }, get: func(c *Config) string { return c.APIToken }},
	{key: "log-format", def: "text", help: "log format: text or json",
		set: func(c *Config, v string) error {
			if v != "text" && v != "json" {
				return fmt.Errorf("%q is neither text nor json", v)
			}
			c.LogFormat = v
			return nil
		}, get: func(c *Config) string { return c.LogFormat }},
	{key: "log-level", def: "info", live: true, help: "lowest level logged: debug, info, warn or error",
		set: func(c *Config, v string) error { return c.LogLevel.UnmarshalText([]byte(v)) },
		get: func(c *Config) string { return strings.ToLower(c.LogLevel.String()) }},
	{key: "processes", kind: kindInt, def: "0", help: "worker processes under a supervisor (0: run in this process)",
		set: func(c *Config, v string) error { return natural(&c.Processes, v) },
		get: func(c *Config) string { return strconv.Itoa(c.Processes) }},
	{key: "max-jobs", kind: kindInt, def: "0", help: "recycle a supervised process after this many jobs (0: never)",
		set: func(c *Config, v string) error { return natural(&c.MaxJobs, v) },
		get: func(c *Config) string { return strconv.Itoa(c.MaxJobs) }},
	{key: "max-rss", def: "0", help: "recycle a supervised process past this resident memory, e.g. 512MiB (0: never)",
		set: func(c *Config, v string) (err error) { c.MaxRSS, err = parseBytes(v); return err },
		get: func(c *Config) string { return strconv.FormatInt(c.MaxRSS, 10) }},
	{key: "slow-job", def: "0", live: true, help: "log a warning for a job still running past this (0: never)",
		set: func(c *Config, v string) error { return duration(&c.SlowJob, v, true) },
		get: func(c *Config) string { return c.SlowJob.String() }},
}

// configKey names the flag and variable that point at the config file.
// It is not a key of the file itself.
const configKey = "config"

// envName is the environment variable of a key: log-level is
// CONVEYOR_LOG_LEVEL.
func envName(key string) string {
	return "CONVEYOR_" + strings.ToUpper(strings.ReplaceAll(key, "-", "_"))
}

func lookup(key string) (setting, bool) {
	i := slices.IndexFunc(settings, func(s setting) bool { return s.key == key })
	if i < 0 {
		return setting{}, false
	}
	return settings[i], true
}

// Defaults returns the configuration with every key at its default.
func Defaults() Config {
	var c Config
	for _, s := range settings {
		if err := s.set(&c, s.def); err != nil {
			panic(fmt.Sprintf("daemon: default of %s: %v", s.key, err)) // a bug in the table above
		}
	}
	return c
}

func positive(dst *int, v string) error {
	n, err := strconv.Atoi(v)
	if err != nil {
		return errors.New("not an integer")
	}
	if n <= 0 {
		return errors.New("must be above 0")
	}
	*dst = n
	return nil
}

func natural(dst *int, v string) error {
	n, err := strconv.Atoi(v)
	if err != nil {
		return errors.New("not an integer")
	}
	if n < 0 {
		return errors.New("must not be negative")
	}
	*dst = n
	return nil
}

func duration(dst *time.Duration, v string, zeroOK bool) error {
	d, err := time.ParseDuration(v)
	if err != nil {
		return fmt.Errorf("not a duration like 30s or 5m")
	}
	if d < 0 || d == 0 && !zeroOK {
		return errors.New("must be above 0")
	}
	*dst = d
	return nil
}

// parseQueues reads NAME[:CONCURRENCY[:WEIGHT]],...
func parseQueues(v string) ([]worker.QueueConfig, error) {
	var qs []worker.QueueConfig
	seen := map[string]bool{}
	for item := range strings.SplitSeq(v, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		parts := strings.Split(item, ":")
		q := worker.QueueConfig{Name: parts[0]}
		if q.Name == "" || len(parts) > 3 {
			return nil, fmt.Errorf("%q is not NAME[:CONCURRENCY[:WEIGHT]]", item)
		}
		if seen[q.Name] {
			return nil, fmt.Errorf("queue %q is listed twice", q.Name)
		}
		seen[q.Name] = true
		if len(parts) > 1 && parts[1] != "" && natural(&q.Concurrency, parts[1]) != nil {
			return nil, fmt.Errorf("%q: concurrency %q is not an integer of 0 or more", item, parts[1])
		}
		if len(parts) > 2 && positive(&q.Weight, parts[2]) != nil {
			return nil, fmt.Errorf("%q: weight %q is not an integer above 0", item, parts[2])
		}
		qs = append(qs, q)
	}
	if len(qs) == 0 {
		return nil, errors.New("no queue named")
	}
	return qs, nil
}

func formatQueues(qs []worker.QueueConfig) string {
	out := make([]string, len(qs))
	for i, q := range qs {
		s := q.Name
		if q.Concurrency > 0 || q.Weight > 1 {
			s += ":" + strconv.Itoa(q.Concurrency)
		}
		if q.Weight > 1 {
			s += ":" + strconv.Itoa(q.Weight)
		}
		out[i] = s
	}
	return strings.Join(out, ",")
}

// parseFair reads QUEUE[:GROUP=WEIGHT...],...
func parseFair(v string) (map[string]map[string]int, error) {
	m := map[string]map[string]int{}
	for item := range strings.SplitSeq(v, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		parts := strings.Split(item, ":")
		if parts[0] == "" {
			return nil, fmt.Errorf("%q is not QUEUE[:GROUP=WEIGHT...]", item)
		}
		if _, dup := m[parts[0]]; dup {
			return nil, fmt.Errorf("queue %q is listed twice", parts[0])
		}
		weights := map[string]int{}
		for _, p := range parts[1:] {
			g, w, ok := strings.Cut(p, "=")
			if !ok || g == "" || positive(new(int), w) != nil {
				return nil, fmt.Errorf("%q: %q is not GROUP=WEIGHT with a weight above 0", item, p)
			}
			weights[g], _ = strconv.Atoi(w)
		}
		m[parts[0]] = weights
	}
	return m, nil
}

// FormatFair writes fair queues and their groups' weights (Config.Fair,
// worker.Info.Fair) as the fair key takes them: QUEUE[:GROUP=WEIGHT...],
// comma-separated, sorted.
func FormatFair(m map[string]map[string]int) string {
	var out []string
	for _, q := range slices.Sorted(maps.Keys(m)) {
		s := q
		for _, g := range slices.Sorted(maps.Keys(m[q])) {
			s += ":" + g + "=" + strconv.Itoa(m[q][g])
		}
		out = append(out, s)
	}
	return strings.Join(out, ",")
}

// workerQueues is Queues with Fair applied, for the worker.
func (c Config) workerQueues() []worker.QueueConfig {
	qs := slices.Clone(c.Queues)
	for i, q := range qs {
		if w, ok := c.Fair[q.Name]; ok {
			qs[i].Fair, qs[i].FairWeights = true, w
		}
	}
	return qs
}

// checkFair refuses a fair queue that is not worked.
func (c Config) checkFair() error {
	for q := range c.Fair {
		if !slices.ContainsFunc(c.Queues, func(wq worker.QueueConfig) bool { return wq.Name == q }) {
			return fmt.Errorf("fair queue %q is not one of the queues (%s)", q, formatQueues(c.Queues))
		}
	}
	return nil
}

// parseBreakers reads NAME:FAILURES:OPEN-FOR,...
func parseBreakers(v string) (map[string]worker.BreakerConfig, error) {
	m := map[string]worker.BreakerConfig{}
	for item := range strings.SplitSeq(v, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		parts := strings.Split(item, ":")
		if len(parts) != 3 || parts[0] == "" {
			return nil, fmt.Errorf("%q is not NAME:FAILURES:OPEN-FOR", item)
		}
		var b worker.BreakerConfig
		if positive(&b.ConsecutiveFailures, parts[1]) != nil {
			return nil, fmt.Errorf("%q: failures %q is not an integer above 0", item, parts[1])
		}
		if duration(&b.OpenFor, parts[2], false) != nil {
			return nil, fmt.Errorf("%q: open-for %q is not a duration above 0", item, parts[2])
		}
		m[parts[0]] = b
	}
	return m, nil
}

func formatBreakers(m map[string]worker.BreakerConfig) string {
	var out []string
	for _, name := range slices.Sorted(maps.Keys(m)) {
		b := m[name]
		out = append(out, fmt.Sprintf("%s:%d:%s", name, b.ConsecutiveFailures, b.OpenFor))
	}
	return strings.Join(out, ",")
}

// parseBytes reads a size: a number of bytes, or one with a unit (KB, MB,
// GB by 1000; KiB, MiB, GiB by 1024).
func parseBytes(v string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}
	num, mult := strings.TrimSpace(v), int64(1)
	for _, u := range units {
		if s, ok := strings.CutSuffix(num, u.suffix); ok {
			num, mult = strings.TrimSpace(s), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a size like 512MiB", v)
	}
	return n * mult, nil
}

// change is one key whose value differs between two configurations.
type change struct {
	key, from, to string
	live          bool // applied without a restart
}

func (c change) String() string { return fmt.Sprintf("%s: %q -> %q", c.key, c.from, c.to) }

// diffConfigs lists the keys whose values differ, in documentation order.
func diffConfigs(old, new Config) []change {
	var out []change
	for _, s := range settings {
		if a, b := s.get(&old), s.get(&new); a != b {
			out = append(out, change{key: s.key, from: a, to: b, live: s.live})
		}
	}
	return out
}
