package daemon

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// sources are the inputs of one configuration: read again on SIGHUP, so a
// flag or variable keeps overriding what the edited file says.
type sources struct {
	flags map[string]string // key -> value of the flags given
	env   func(string) (string, bool)
	file  string // the config file, or ""
}

// parseFlags reads the command line into sources without applying it, so
// that the file (which a flag names) can come first in precedence order.
func parseFlags(name string, args []string, stdout io.Writer, env func(string) (string, bool)) (sources, error) {
	src := sources{flags: map[string]string{}, env: env}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are returned as one line; -h prints below
	for _, s := range settings {
		record := func(v string) error { src.flags[s.key] = v; return nil }
		help := fmt.Sprintf("%s (env %s, default %q)", s.help, envName(s.key), s.def)
		if s.kind == kindBool {
			fs.BoolFunc(s.key, help, record)
		} else {
			fs.Func(s.key, help, record)
		}
	}
	fs.StringVar(&src.file, configKey, "", "TOML config file (env "+envName(configKey)+"); flags and environment override its keys")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stdout)
			fmt.Fprintf(stdout, "Usage of %s:\n", name)
			fs.PrintDefaults()
			return src, err
		}
		return src, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if fs.NArg() > 0 {
		return src, fmt.Errorf("%w: unexpected argument %q (flags only)", ErrConfig, fs.Arg(0))
	}
	if src.file == "" {
		src.file, _ = env(envName(configKey))
	}
	return src, nil
}

// load builds the configuration: defaults, then the file, then the
// environment, then the flags.
func (src sources) load() (Config, error) {
	c := Defaults()
	if src.file != "" {
		if err := readFile(src.file, &c); err != nil {
			return c, err
		}
	}
	for _, s := range settings {
		if v, ok := src.env(envName(s.key)); ok {
			if err := s.set(&c, v); err != nil {
				return c, fmt.Errorf("%w: environment %s=%q: %w", ErrConfig, envName(s.key), v, err)
			}
		}
	}
	for _, s := range settings {
		if v, ok := src.flags[s.key]; ok {
			if err := s.set(&c, v); err != nil {
				return c, fmt.Errorf("%w: flag -%s %q: %w", ErrConfig, s.key, v, err)
			}
		}
	}
	if err := c.checkFair(); err != nil {
		return c, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return c, nil
}

// CheckConfig validates a config file (the CLI's `config check FILE`):
// nil, or an error naming the file, line and key.
func CheckConfig(path string) error {
	c := Defaults()
	return readFile(path, &c)
}

// readFile applies the keys of a TOML config file to c. Unknown keys and
// values of the wrong type are refused, naming the key and its line.
func readFile(path string, c *Config) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%w: config file: %w", ErrConfig, err)
	}
	text := string(data)
	var raw map[string]toml.Primitive
	md, err := toml.Decode(text, &raw)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return fmt.Errorf("%w: %s:%d: %s", ErrConfig, path, pe.Position.Line, pe.Message)
		}
		return fmt.Errorf("%w: %s: %w", ErrConfig, path, err)
	}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int { return keyLine(text, a) - keyLine(text, b) })
	for _, k := range keys {
		s, ok := lookup(k)
		if !ok {
			return unknownKey(path, text, k)
		}
		var v any
		if err := md.PrimitiveDecode(raw[k], &v); err != nil {
			return fmt.Errorf("%w: %s:%d: key %s: %w", ErrConfig, path, keyLine(text, k), k, err)
		}
		str, err := flagSyntax(s.kind, v)
		if err == nil {
			err = s.set(c, str)
		}
		if err != nil {
			return fmt.Errorf("%w: %s:%d: key %s: %w", ErrConfig, path, keyLine(text, k), k, err)
		}
	}
	// The decoder counts a top-level key as decoded once it is in the map,
	// so the loop above refuses unknown ones; what it left undecoded is
	// inside a table.
	if un := md.Undecoded(); len(un) > 0 {
		return unknownKey(path, text, un[0].String())
	}
	return nil
}

func unknownKey(path, text, key string) error {
	top, _, _ := strings.Cut(key, ".")
	return fmt.Errorf("%w: %s:%d: unknown key %q (the keys are %s)", ErrConfig, path, keyLine(text, top), key, knownKeys())
}

// flagSyntax checks a file value's TOML type and writes it as a flag would.
func flagSyntax(k kind, v any) (string, error) {
	switch x := v.(type) {
	case string:
		if k == kindString {
			return x, nil
		}
	case int64:
		if k == kindInt {
			return strconv.FormatInt(x, 10), nil
		}
	case bool:
		if k == kindBool {
			return strconv.FormatBool(x), nil
		}
	case []any:
		if k == kindList {
			items := make([]string, len(x))
			for i, it := range x {
				s, ok := it.(string)
				if !ok || strings.Contains(s, ",") {
					return "", fmt.Errorf("item %d (%v) is not a string without commas", i+1, it)
				}
				items[i] = s
			}
			return strings.Join(items, ","), nil
		}
	}
	want := map[kind]string{kindString: "a string", kindInt: "an integer", kindBool: "true or false", kindList: "an array of strings"}[k]
	return "", fmt.Errorf("want %s, got %T %v", want, v, v)
}

func knownKeys() string {
	names := make([]string, len(settings))
	for i, s := range settings {
		names[i] = s.key
	}
	return strings.Join(names, ", ")
}

// keyLine finds the line where a top-level key or table is set; the TOML
// decoder does not say where an undecoded key is. 0 if not found.
func keyLine(text, key string) int {
	q := regexp.QuoteMeta(key)
	re := regexp.MustCompile(`^\s*(?:\[\[?\s*)?["']?` + q + `["']?\s*(?:=|\.|\])`)
	for i, line := range strings.Split(text, "\n") {
		if re.MatchString(line) {
			return i + 1
		}
	}
	return 0
}
