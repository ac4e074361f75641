package archtest

import (
	"bytes"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/printer"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite api/conveyor.txt from the code")

// golden is the public API, one declaration a line, as Go's own api/ files
// keep it: a change to it is a change users see, made on purpose.
const golden = "../../api/conveyor.txt"

// TestPublicAPI compares the exported declarations of every importable
// package with the golden file. After a deliberate change, run
// `go test ./internal/archtest -run TestPublicAPI -update` and review the
// diff.
func TestPublicAPI(t *testing.T) {
	var lines []string
	for _, p := range packages(t) {
		// Binaries, internal packages and the examples are nobody's API.
		if p.Name == "main" || strings.Contains(p.ImportPath, "/internal") || strings.Contains(p.ImportPath, "/examples/") {
			continue
		}
		lines = append(lines, apiOf(t, p.ImportPath)...)
	}
	slices.Sort(lines)
	got := strings.Join(lines, "\n") + "\n"
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (create it with -update)", err)
	}
	wantLines := strings.Split(strings.TrimSuffix(string(want), "\n"), "\n")
	for _, l := range lines {
		if !slices.Contains(wantLines, l) {
			t.Errorf("added to the API: %s", l)
		}
	}
	for _, l := range wantLines {
		if !slices.Contains(lines, l) {
			t.Errorf("gone from the API: %s", l)
		}
	}
	if t.Failed() {
		t.Log("if the change is deliberate: go test ./internal/archtest -run TestPublicAPI -update")
	}
}

// apiOf lists one package's exported declarations.
func apiOf(t *testing.T, importPath string) []string {
	t.Helper()
	dir := filepath.Join("../..", strings.TrimPrefix(importPath, mod))
	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(fset, dir, func(fi os.FileInfo) bool { return !strings.HasSuffix(fi.Name(), "_test.go") }, 0)
	if err != nil {
		t.Fatal(err)
	}
	short := strings.TrimPrefix(strings.TrimPrefix(importPath, mod), "/")
	if short == "" {
		short = "."
	}
	var out []string
	emit := func(format string, args ...any) { out = append(out, short+": "+fmt.Sprintf(format, args...)) }
	src := func(n any) string {
		var b bytes.Buffer
		_ = printer.Fprint(&b, fset, n)
		return strings.Join(strings.Fields(b.String()), " ")
	}
	for _, p := range pkgs {
		for _, f := range p.Files {
			for _, d := range f.Decls {
				switch d := d.(type) {
				case *ast.FuncDecl:
					if !d.Name.IsExported() || (d.Recv != nil && !exportedRecv(d.Recv)) {
						continue
					}
					fd := *d
					fd.Doc, fd.Body = nil, nil
					emit("%s", src(&fd))
				case *ast.GenDecl:
					for _, s := range d.Specs {
						switch s := s.(type) {
						case *ast.TypeSpec:
							if s.Name.IsExported() {
								typeAPI(emit, src, s)
							}
						case *ast.ValueSpec:
							for _, n := range s.Names {
								if n.IsExported() {
									if s.Type != nil {
										emit("%s %s %s", d.Tok, n.Name, src(s.Type))
									} else {
										emit("%s %s", d.Tok, n.Name)
									}
								}
							}
						}
					}
				}
			}
		}
	}
	return out
}

// typeAPI lists a type and, for structs and interfaces, each exported
// field or method on a line of its own, so a diff names what changed.
func typeAPI(emit func(string, ...any), src func(any) string, s *ast.TypeSpec) {
	name := s.Name.Name
	if s.TypeParams != nil {
		name += src(s.TypeParams)
	}
	var fields *ast.FieldList
	kind := ""
	switch ty := s.Type.(type) {
	case *ast.StructType:
		fields, kind = ty.Fields, "struct"
	case *ast.InterfaceType:
		fields, kind = ty.Methods, "interface"
	default:
		eq := " "
		if s.Assign.IsValid() {
			eq = " = "
		}
		emit("type %s%s%s", name, eq, src(s.Type))
		return
	}
	emit("type %s %s", name, kind)
	for _, f := range fields.List {
		f.Doc, f.Comment = nil, nil
		if len(f.Names) == 0 { // embedded
			emit("type %s %s, embeds %s", name, kind, src(f.Type))
			continue
		}
		for _, n := range f.Names {
			if n.IsExported() {
				emit("type %s %s, %s %s", name, kind, n.Name, src(f.Type))
			}
		}
	}
}

func exportedRecv(r *ast.FieldList) bool {
	ty := r.List[0].Type
	if st, ok := ty.(*ast.StarExpr); ok {
		ty = st.X
	}
	switch g := ty.(type) { // a generic type's receiver names its parameters
	case *ast.IndexExpr:
		ty = g.X
	case *ast.IndexListExpr:
		ty = g.X
	}
	id, ok := ty.(*ast.Ident)
	return ok && id.IsExported()
}
