package main

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
	"github.com/stretchr/testify/require"
)

var updateDocs = flag.Bool("update-docs", false, "rewrite docs/cli.md from the commands")

// cliReferencePath is the CLI reference, generated from the commands.
var cliReferencePath = filepath.Join("..", "..", "docs", "cli.md")

// cliReference renders every command's help as one markdown page.
func cliReference(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	buf.WriteString("# acomm command reference\n\n" +
		"<!-- Generated from the commands by `go test ./cmd/acomm -run TestCLIReferenceCurrent -update-docs`; do not edit. -->\n\n")
	link := func(name string) string {
		return "#" + strings.ReplaceAll(strings.TrimSuffix(name, ".md"), "_", "-")
	}
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		if !c.IsAvailableCommand() && c.HasParent() {
			return
		}
		c.DisableAutoGenTag = true
		require.NoError(t, doc.GenMarkdownCustom(c, &buf, link))
		buf.WriteString("\n")
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRootCmd())
	return bytes.TrimRight(buf.Bytes(), "\n")
}

// TestCLIReferenceCurrent fails when docs/cli.md does not match the
// commands; -update-docs rewrites it.
func TestCLIReferenceCurrent(t *testing.T) {
	got := append(cliReference(t), '\n')
	if *updateDocs {
		require.NoError(t, os.MkdirAll(filepath.Dir(cliReferencePath), 0o755))
		require.NoError(t, os.WriteFile(cliReferencePath, got, 0o644))
	}
	want, err := os.ReadFile(cliReferencePath)
	require.NoError(t, err)
	require.Equal(t, string(want), string(got),
		"docs/cli.md is stale: go test ./cmd/acomm -run TestCLIReferenceCurrent -update-docs")
}

// TestReadmeQuickStart checks that the README's quick start is the
// program in examples/quickstart, and that it runs as the README says.
func TestReadmeQuickStart(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	require.NoError(t, err)
	prog, err := os.ReadFile(filepath.Join("..", "..", "examples", "quickstart", "main.go"))
	require.NoError(t, err)
	require.Contains(t, string(readme), "```go\n"+string(prog)+"```\n", "the README's quick start differs from examples/quickstart/main.go")

	out, err := exec.Command("go", "run", "../../examples/quickstart").CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Equal(t, "HELLO\n", string(out))
}
