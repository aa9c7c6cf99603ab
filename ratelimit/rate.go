package ratelimit

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Rate is a limit of Limit requests per Window. The zero Rate means "off".
type Rate struct {
	Limit  int
	Window time.Duration
}

// Off reports whether r disables limiting.
func (r Rate) Off() bool { return r.Limit == 0 }

// String formats r as ParseRate reads it: "600/1m0s", or "off".
func (r Rate) String() string {
	if r.Off() {
		return "off"
	}
	return strconv.Itoa(r.Limit) + "/" + r.Window.String()
}

// Bounds of a Rate, so a typo cannot make a limiter that never resets or
// that keeps a key for years.
const (
	MaxLimit  = 1_000_000_000
	MinWindow = time.Second
	MaxWindow = 7 * 24 * time.Hour
)

// ParseRate reads a limit written N/DURATION with a Go duration ("10/1s",
// "600/1m", "5000/1h"), or "off". Errors say what is wrong in one line.
func ParseRate(s string) (Rate, error) {
	s = strings.TrimSpace(s)
	if strings.EqualFold(s, "off") {
		return Rate{}, nil
	}
	n, d, ok := strings.Cut(s, "/")
	if !ok {
		return Rate{}, fmt.Errorf("%q: want N/DURATION such as 600/1m, or off", s)
	}
	limit, err := strconv.Atoi(n)
	if err != nil || limit < 1 || limit > MaxLimit {
		return Rate{}, fmt.Errorf("%q: the count must be a whole number from 1 to %d", s, MaxLimit)
	}
	window, err := time.ParseDuration(d)
	if err != nil {
		return Rate{}, fmt.Errorf("%q: the window must be a Go duration such as 10s, 1m or 1h", s)
	}
	if window < MinWindow || window > MaxWindow {
		return Rate{}, fmt.Errorf("%q: the window must be between %s and %s", s, MinWindow, MaxWindow)
	}
	if window%time.Millisecond != 0 {
		return Rate{}, fmt.Errorf("%q: the window must be whole milliseconds", s)
	}
	return Rate{Limit: limit, Window: window}, nil
}
