package clientip_test

import (
	"fmt"
	"net/http/httptest"

	"github.com/theaterscriptpro/tsp/clientip"
)

func ExampleResolver_ClientIP() {
	proxies, err := clientip.Parse("::ffff:10.0.0.0/104, 192.0.2.7") // os.Getenv("TRUSTED_PROXIES")
	if err != nil {
		fmt.Println(err)
		return
	}
	res := clientip.Resolver{Trusted: proxies}

	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "10.1.2.3:41000" // the load balancer
	r.Header.Set("X-Forwarded-For", "6.6.6.6, 198.51.100.9")
	fmt.Println(proxies, res.ClientIP(r))
	// Output: [10.0.0.0/8 192.0.2.7/32] 198.51.100.9
}
