package problem_test

import (
	"fmt"
	"net/http/httptest"

	"github.com/theaterscriptpro/tsp/problem"
)

func ExampleWrite() {
	rec := httptest.NewRecorder()
	problem.Write(rec, problem.Details{Status: 400, Detail: "title: must not be empty", Field: "title"})
	fmt.Println(rec.Code, rec.Header().Get("Content-Type"))
	fmt.Print(rec.Body.String())
	// Output:
	// 400 application/problem+json
	// {"type":"about:blank","title":"Bad Request","status":400,"detail":"title: must not be empty","field":"title"}
}
