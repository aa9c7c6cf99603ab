package redisx_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/theaterscriptpro/tsp/internal/redistest"
	"github.com/theaterscriptpro/tsp/redisx"
)

// TestDialContext: Config.DialContext makes every connection, to the
// address dialled; with TLS the client handshakes over what it returns,
// verifying the server's name as its own dial would; the hook's error is
// the reason calls give while it fails.
func TestDialContext(t *testing.T) {
	t.Parallel()
	counting := func(dials *atomic.Int64, seen *atomic.Pointer[string]) func(ctx context.Context, network, addr string) (net.Conn, error) {
		return func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			seen.Store(&addr)
			if network != "tcp" {
				return nil, errors.New("network " + network + ", want tcp")
			}
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}
	}
	t.Run("plain", func(t *testing.T) {
		t.Parallel()
		var dials atomic.Int64
		var seen atomic.Pointer[string]
		srv := redistest.StartServer(t)
		cfg := redistest.At(redistest.Config(t), srv.Addr)
		cfg.DialContext = counting(&dials, &seen)
		rdb := redistest.Connect(t, cfg)
		if err := rdb.Ping(context.Background()); err != nil {
			t.Fatal(err)
		}
		if dials.Load() == 0 || *seen.Load() != srv.Addr {
			t.Fatalf("the hook made %d dials, the last to %v; want at least one, to %s", dials.Load(), seen.Load(), srv.Addr)
		}
	})
	t.Run("TLS", func(t *testing.T) {
		t.Parallel()
		certs := redistest.NewTLSCerts(t)
		srv := redistest.StartTLSServer(t, certs)
		wrongName := redistest.NewTLSCerts(t, "redis.example.internal")
		wrongSrv := redistest.StartTLSServer(t, wrongName)
		for _, tc := range []struct {
			name    string
			srv     *redistest.Server
			certs   redistest.TLSCerts
			wantErr string
		}{
			{"the server's name verified", srv, certs, ""},
			{"a certificate for another name", wrongSrv, wrongName, "cannot validate certificate for 127.0.0.1"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				var dials atomic.Int64
				var seen atomic.Pointer[string]
				cfg, err := redisx.ParseURL("rediss://" + tc.srv.Addr)
				if err != nil {
					t.Fatal(err)
				}
				cfg.TLS.RootCAs = tc.certs.Pool
				cfg.TLS.ServerName = "" // the client fills it in from the address, as tls.Dialer does
				cfg.DialContext = counting(&dials, &seen)
				got := tryClient(t, cfg)
				if dials.Load() == 0 {
					t.Fatal("the hook was never called")
				}
				switch {
				case tc.wantErr == "" && got.err != nil:
					t.Fatalf("Set over TLS through the hook: %v", got.err)
				case tc.wantErr != "" && !strings.Contains(got.err.Error()+got.logs, tc.wantErr):
					t.Fatalf("Set: %v (logs %s); want an error saying %q", got.err, got.logs, tc.wantErr)
				}
			})
		}
	})
	t.Run("the hook fails", func(t *testing.T) {
		t.Parallel()
		cfg := redistest.Config(t)
		cfg.DialTimeout = 200 * time.Millisecond
		cfg.DialContext = func(context.Context, string, string) (net.Conn, error) {
			return nil, errors.New("no route to the test's Redis")
		}
		rdb, err := redisx.New(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer rdb.Close()
		err = rdb.Ping(context.Background())
		if !errors.Is(err, redisx.ErrUnavailable) || !strings.Contains(err.Error(), "no route to the test's Redis") {
			t.Fatalf("Ping = %v; want ErrUnavailable naming the hook's error", err)
		}
	})
}
