package redistest

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

// nodeDo sends one command to the server at addr on a connection of its own
// and returns the reply. It is how the harness inspects and steers single
// nodes (CLUSTER INFO, ROLE, SENTINEL ...) without going through a cluster
// or sentinel client that would route the command elsewhere.
func nodeDo(ctx context.Context, addr string, args ...string) (rueidis.RedisMessage, error) {
	rdb, err := rueidis.NewClient(rueidis.ClientOption{
		InitAddress:       []string{addr},
		ForceSingleClient: true,
		DisableCache:      true,
		DisableRetry:      true,
		Dialer:            net.Dialer{Timeout: time.Second},
		ConnWriteTimeout:  2 * time.Second,
	})
	if err != nil {
		return rueidis.RedisMessage{}, err
	}
	defer rdb.Close()
	return rdb.Do(ctx, rdb.B().Arbitrary(args[0]).Args(args[1:]...).Build()).ToMessage()
}

// nodeString is nodeDo for commands that answer a (bulk, simple or
// verbatim) string. Over RESP3, INFO and CLUSTER INFO/NODES answer verbatim
// strings, which rueidis hands over with their "txt:" format prefix.
func nodeString(ctx context.Context, addr string, args ...string) (string, error) {
	m, err := nodeDo(ctx, addr, args...)
	if err != nil {
		return "", err
	}
	s, err := m.ToString()
	return strings.TrimPrefix(s, "txt:"), err
}

// infoFields parses the "field:value" lines of an INFO or CLUSTER INFO reply.
func infoFields(s string) map[string]string {
	out := make(map[string]string)
	for _, line := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			out[k] = v
		}
	}
	return out
}

// waitFor polls cond every 50ms until it returns nil or timeout passes; it
// returns cond's last error, so a failed start says what was missing.
func waitFor(timeout time.Duration, cond func(ctx context.Context) error) error {
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := cond(ctx)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %s: %w", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freePorts returns n distinct free loopback ports. A port is free when
// asked; the small race with other processes is acceptable for tests.
func freePorts(n int) ([]int, error) {
	seen := make(map[int]bool, n)
	ports := make([]int, 0, n)
	for len(ports) < n {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		if !seen[p] {
			seen[p] = true
			ports = append(ports, p)
		}
	}
	return ports, nil
}

func addrOf(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }
