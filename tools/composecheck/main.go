// Command composecheck loads compose.yaml the way `docker compose config`
// does (compose-go: the Compose specification's schema, interpolation,
// merging), for CI machines without docker compose. It fills the required
// passwords with placeholders when they are unset.
//
//	cd tools/composecheck && go run . ../../compose.yaml
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/compose-spec/compose-go/v2/cli"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: composecheck compose.yaml")
		os.Exit(2)
	}
	for _, k := range []string{"REDIS_PASSWORD", "POSTGRES_PASSWORD"} {
		if os.Getenv(k) == "" {
			os.Setenv(k, "placeholder0")
		}
	}
	opts, err := cli.NewProjectOptions([]string{os.Args[1]}, cli.WithOsEnv, cli.WithName("composecheck"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "composecheck:", err)
		os.Exit(1)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, "composecheck:", err)
		os.Exit(1)
	}
	fmt.Printf("%s: valid; services %v\n", os.Args[1], p.ServiceNames())
}
