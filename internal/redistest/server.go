package redistest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Server is a redis-server process of the test's own, for fault tests.
type Server struct {
	Addr string // 127.0.0.1:port
	Port int
	Dir  string // its working directory (logs)
	args []string
	cmd  *exec.Cmd
}

// StartServer starts a throwaway redis-server on a free loopback port with
// no persistence, plus any extra arguments (e.g. "--requirepass", "x").
// It is killed at cleanup.
func StartServer(tb testing.TB, args ...string) *Server {
	tb.Helper()
	s, err := startServer(args)
	if err != nil {
		tb.Fatalf("redistest: %v (%s)", err, installHint)
	}
	tb.Cleanup(s.Close)
	return s
}

// Close kills the server and removes its directory.
func (s *Server) Close() {
	s.Kill()
	_ = os.RemoveAll(s.Dir)
}

func startServer(args []string) (*Server, error) {
	dir, err := os.MkdirTemp("", "redistest-")
	if err != nil {
		return nil, err
	}
	// A free port may be taken by another process before the server binds
	// it (the machine runs several test binaries); then try another one.
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		s := &Server{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Port: port, Dir: dir, args: args}
		err = s.start()
		if err == nil || !errors.Is(err, errExited) || attempt == startAttempts {
			return s, err
		}
	}
}

// startAttempts bounds the ports tried when a server exits at start.
const startAttempts = 5

// errExited is a server that exited while starting, most often because a
// port it was given was taken meanwhile.
var errExited = errors.New("redis-server exited while starting")

func (s *Server) start() error {
	bin, err := redisServerPath()
	if err != nil {
		return err
	}
	logPath := filepath.Join(s.Dir, "redis.log")
	var logFrom int64 // a restart appends to the log: read only what this start writes
	if fi, err := os.Stat(logPath); err == nil {
		logFrom = fi.Size()
	}
	args := append([]string{
		"--port", strconv.Itoa(s.Port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.Dir,
		"--logfile", logPath,
	}, s.args...)
	cmd := exec.Command(bin, args...)
	// The server dies with the test binary, even if the test panics.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	s.cmd = cmd
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	newLog := func() string {
		b, _ := os.ReadFile(logPath)
		if int64(len(b)) < logFrom {
			return string(b)
		}
		return string(b[logFrom:])
	}
	// Ready when its own log says so: a port that answers may be another
	// process's (one that took the port first), and then this server exits.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("%w on %s: %s", errExited, s.Addr, newLog())
		default:
		}
		if strings.Contains(newLog(), "Ready to accept connections") {
			if conn, err := net.DialTimeout("tcp", s.Addr, 100*time.Millisecond); err == nil {
				conn.Close()
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	return fmt.Errorf("redis-server on %s did not start: %s", s.Addr, newLog())
}

// Kill stops the server at once (SIGKILL), as a crash would.
func (s *Server) Kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(syscall.SIGCONT) // a paused process must be able to die
		_ = s.cmd.Process.Kill()
		s.waitGone()
	}
}

// Pause freezes the server (SIGSTOP): connections stay open and hang,
// which is the hardest outage for a client.
func (s *Server) Pause() { _ = s.cmd.Process.Signal(syscall.SIGSTOP) }

// Resume continues a paused server (SIGCONT).
func (s *Server) Resume() { _ = s.cmd.Process.Signal(syscall.SIGCONT) }

// Restart kills the server and starts a new, empty one on the same port.
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	s.Kill()
	if err := s.start(); err != nil {
		tb.Fatalf("redistest: restart: %v", err)
	}
}

// Start starts a killed server again on the same port.
func (s *Server) Start(tb testing.TB) {
	tb.Helper()
	if err := s.start(); err != nil {
		tb.Fatalf("redistest: start: %v", err)
	}
}

func (s *Server) waitGone() {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		conn, err := net.DialTimeout("tcp", s.Addr, 50*time.Millisecond)
		if err != nil {
			return
		}
		conn.Close()
		time.Sleep(10 * time.Millisecond)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
