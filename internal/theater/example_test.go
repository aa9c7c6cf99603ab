package theater_test

import (
	"fmt"
	"time"

	"github.com/theaterscriptpro/tsp/internal/theater"
)

func ExampleScriptInput_Validate() {
	in := theater.ScriptInput{Title: " Hamlet ", Genre: "Tragedy", CastMin: 8, CastMax: 20, DurationMinutes: 240}
	fmt.Println(in.Validate(), in.Title, in.Genre, in.Language)

	in.CastMax = 2
	err := in.Validate()
	fmt.Println(theater.ErrorCode(err), theater.ErrorField(err), theater.ErrorMessage(err))
	// Output:
	// <nil> Hamlet tragedy en
	// invalid castMax castMax: must be castMin to 200
}

func ExampleLicenseInput_Validate() {
	now := time.Date(2026, 1, 10, 9, 0, 0, 0, time.UTC)
	in := theater.LicenseInput{
		Type:         theater.LicensePerformance,
		Performances: 0,
		EndsAt:       now.AddDate(0, 1, 0),
	}
	fmt.Println(theater.ErrorMessage(in.Validate(now)))
	in.Performances = 6
	fmt.Println(in.Validate(now), in.StartsAt.Format(time.RFC3339))
	// Output:
	// performances: must be at least 1 for a performance licence
	// <nil> 2026-01-10T09:00:00Z
}

func ExampleValidID() {
	id := theater.NewID()
	fmt.Println(len(id), theater.ValidID(id), theater.ValidID("../../admin"))
	// Output: 16 true false
}

func ExampleCanEditScript() {
	author := theater.User{ID: theater.NewID(), Role: theater.RolePlaywright}
	other := theater.User{ID: theater.NewID(), Role: theater.RolePlaywright}
	s := theater.Script{ID: theater.NewID(), AuthorID: author.ID}
	fmt.Println(theater.CanEditScript(author, s), theater.CanEditScript(other, s))
	// Output: true false
}
