package redisx_test

import (
	"context"
	"fmt"
	"time"

	"github.com/theaterscriptpro/tsp/redisx"
)

// The examples talk to the Redis on localhost:6379, as the tests do.
func exampleClient() *redisx.Client {
	ctx := context.Background()
	rdb, err := redisx.New(ctx, redisx.Config{
		Addrs:     []string{"127.0.0.1:6379"},
		KeyPrefix: "example:" + fmt.Sprint(time.Now().UnixNano()) + ":",
	})
	if err != nil {
		panic(err)
	}
	return rdb
}

func ExampleCache() {
	rdb := exampleClient()
	defer rdb.Close()
	ctx := context.Background()
	type user struct{ ID, Name string }
	loads := 0
	loadUser := func(ctx context.Context) (user, error) {
		loads++ // the database query
		return user{ID: "42", Name: "Ada"}, nil
	}
	key := rdb.Keys().Tagged("user", "42")
	defer rdb.Delete(ctx, key)

	for range 3 {
		u, err := redisx.Cache(ctx, rdb, key, time.Hour, loadUser)
		if err != nil {
			fmt.Println("error:", err)
			return
		}
		fmt.Println(u.Name)
	}
	fmt.Println("loads:", loads)
	// Output:
	// Ada
	// Ada
	// Ada
	// loads: 1
}

func ExampleKeys() {
	keys, err := redisx.NewKeys("tsp:")
	if err != nil {
		panic(err)
	}
	fmt.Println(keys.Tagged("user", "42"))
	fmt.Println(keys.Tagged("scripts:list", "genre=drama&page=1"))
	fmt.Println(keys.Session("a*b{c} d")) // ids are escaped, never passed through
	fmt.Println(keys.Tagged("sessions", "42", "index"))
	fmt.Println(keys.Join("lock", "a:b"))
	// Output:
	// tsp:user:{42}
	// tsp:scripts:list:{genre=drama&page=1}
	// tsp:session:{a%2Ab%7Bc%7D%20d}
	// tsp:sessions:{42}:index
	// tsp:lock:a%3Ab
}

func ExampleClient_Incr() {
	rdb := exampleClient()
	defer rdb.Close()
	ctx := context.Background()
	key := rdb.Keys().Tagged("views:script", "7")
	defer rdb.Delete(ctx, key)

	for range 3 {
		views, err := rdb.Incr(ctx, key, 24*time.Hour) // the TTL is set in the same atomic step
		if err != nil {
			fmt.Println("error:", err)
			return
		}
		fmt.Println(views)
	}
	ttl, _ := rdb.TTL(ctx, key)
	fmt.Println(ttl > 23*time.Hour)
	// Output:
	// 1
	// 2
	// 3
	// true
}
