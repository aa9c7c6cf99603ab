package demo_test

import (
	"fmt"

	"github.com/theaterscriptpro/tsp/internal/demo"
	"github.com/theaterscriptpro/tsp/internal/theater"
)

// Scripts is deterministic: ids are fresh, everything else is the same on
// every run.
func ExampleScripts() {
	authors := []theater.User{{ID: theater.NewID(), Name: "Ada Marlowe"}}
	for _, s := range demo.Scripts(3, authors) {
		fmt.Printf("%s | %s | %s\n", s.Title, s.Genre, s.CreatedAt.Format("2006-01-02 15:04"))
	}
	// Output:
	// An Orchard in Summer | romance | 2024-01-01 14:09
	// The Winter Lighthouse | thriller | 2024-01-01 20:28
	// The Quiet Inheritance | melodrama | 2024-01-02 02:44
}
