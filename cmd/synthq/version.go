package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/synthq/synthq/stages"
)

// versionString says which synthq this is: the data version recorded in
// every manifest and card, then what the Go toolchain stamped into the
// binary (the module version for `go install …@version`, the commit and
// whether the tree had uncommitted changes for a build from a clone).
func versionString() string {
	var parts []string
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			parts = append(parts, "module "+v)
		}
		var rev, modified string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value
			}
		}
		if rev != "" {
			if len(rev) > 12 {
				rev = rev[:12]
			}
			if modified == "true" {
				rev += " with uncommitted changes"
			}
			parts = append(parts, "commit "+rev)
		}
	}
	parts = append(parts, runtime.Version()+" "+runtime.GOOS+"/"+runtime.GOARCH)
	return fmt.Sprintf("synthq %s (%s)", stages.Version, strings.Join(parts, ", "))
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print synthq's version, the commit it was built from and the Go version",
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("version", "takes no arguments, got %q", c.Args().First())
			}
			fmt.Fprintln(c.App.Writer, versionString())
			return nil
		},
	}
}
