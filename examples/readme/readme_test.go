package readme

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Every ```go block of the README appears, line for line (indentation
// aside), in a Go file of this module, which CI builds and vets: a README
// snippet that does not compile, or that drifts from the compiled copy,
// fails here.
func TestSnippetsAreCompiled(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var sources []string
	for _, f := range []string{"readme.go", "tasks/tasks.go", "tasks/flow.go", "tasks/images.go", "worker/main.go"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sources = append(sources, normalize(string(b)))
	}
	blocks := regexp.MustCompile("(?s)```go\n(.*?)```").FindAllStringSubmatch(string(readme), -1)
	if len(blocks) < 5 {
		t.Fatalf("found %d Go blocks in the README", len(blocks))
	}
	for i, b := range blocks {
		snippet := normalize(b[1])
		found := false
		for _, src := range sources {
			found = found || strings.Contains(src, snippet)
		}
		if !found {
			t.Errorf("README Go block %d is not in this module's files (copy it there, so it is compiled):\n%s", i+1, b[1])
		}
	}
}

// normalize drops each line's leading whitespace, so a snippet matches
// its copy inside a function body.
func normalize(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimLeft(l, " \t")
	}
	return "\n" + strings.Join(lines, "\n") + "\n"
}
