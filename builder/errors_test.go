package builder

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// cliFlagRE is a command-line flag as ipa-oci's CLI spells them (--output, --update-lock).
var cliFlagRE = regexp.MustCompile(`(^|[\s(]|\x60)--[a-z][a-z-]+`)

// TestLibraryErrorsNameNoFlags: no error message built in builder/ or images/ (a string
// literal passed to errors.New, fmt.Errorf or errkind.Mark, or returned by an Error method)
// names a command-line flag: the library says what to change in ipa-oci.yaml's or its own
// terms, and cmd/ipa-oci/hints.go adds the flag by the error's kind.
func TestLibraryErrorsNameNoFlags(t *testing.T) {
	var files []string
	for _, dir := range []string{".", "../images"} {
		err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go") {
				files = append(files, p)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	fset := token.NewFileSet()
	checked := 0
	for _, f := range files {
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		check := func(args []ast.Expr) {
			for _, a := range args {
				ast.Inspect(a, func(n ast.Node) bool {
					if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
						s, _ := strconv.Unquote(lit.Value)
						checked++
						if m := cliFlagRE.FindString(s); m != "" && strings.TrimLeft(m, " (\x60\t\n") != "--bridge" { // dockerd's flag, not ipa-oci's
							t.Errorf("%s: error text names the flag %q: %s", fset.Position(lit.Pos()), strings.TrimSpace(m), s)
						}
					}
					return true
				})
			}
		}
		ast.Inspect(file, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CallExpr:
				if sel, ok := n.Fun.(*ast.SelectorExpr); ok {
					if x, ok := sel.X.(*ast.Ident); ok {
						switch x.Name + "." + sel.Sel.Name {
						case "errors.New", "fmt.Errorf", "errkind.Mark":
							check(n.Args)
						}
					}
				}
			case *ast.FuncDecl:
				if n.Name.Name == "Error" && n.Recv != nil && n.Body != nil {
					ast.Inspect(n.Body, func(m ast.Node) bool {
						if r, ok := m.(*ast.ReturnStmt); ok {
							check(r.Results)
						}
						return true
					})
				}
			}
			return true
		})
	}
	if checked < 100 {
		t.Fatalf("only %d error strings found in %d files: the scan is broken", checked, len(files))
	}
}
