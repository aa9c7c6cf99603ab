package session

import (
	"errors"
	"fmt"
	"time"
)

// Config configures a Store. A zero field means its documented default.
type Config struct {
	// IdleTimeout ends a session that saw no activity for this long
	// (SESSION_IDLE_TIMEOUT). The default is 24 hours.
	IdleTimeout time.Duration

	// AbsoluteTimeout ends a session this long after it was created, however
	// active it is; nothing extends it, not Touch, not Rotate
	// (SESSION_ABSOLUTE_TIMEOUT). The default is 7 days.
	AbsoluteTimeout time.Duration

	// TouchInterval is how old the last write must be before activity
	// writes again: lookups within it cost a read only. It must be shorter
	// than IdleTimeout. The default is 1 minute, or half of IdleTimeout when
	// that is shorter.
	TouchInterval time.Duration

	// MaxPerUser is how many live sessions one user may have; creating one
	// more ends the one nearest its expiry (the least recently used). The
	// default is 20; at most 1000.
	MaxPerUser int

	// Now, if set, is the clock of every expiry decision; the scripts get
	// its time as an argument. It is for tests. Nil (the default) means
	// Redis TIME, read inside each script, so every instance of the service
	// agrees on when a session ends whatever their clocks say.
	Now func() time.Time
}

// ErrInvalidConfig is wrapped by every Config error.
var ErrInvalidConfig = errors.New("session: invalid config")

const (
	defaultIdle       = 24 * time.Hour
	defaultAbsolute   = 7 * 24 * time.Hour
	defaultTouch      = time.Minute
	defaultMaxPerUser = 20
	maxMaxPerUser     = 1000
)

func (cfg Config) withDefaults() Config {
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = defaultIdle
	}
	if cfg.AbsoluteTimeout == 0 {
		cfg.AbsoluteTimeout = defaultAbsolute
	}
	if cfg.TouchInterval == 0 {
		cfg.TouchInterval = min(defaultTouch, cfg.IdleTimeout/2)
	}
	if cfg.MaxPerUser == 0 {
		cfg.MaxPerUser = defaultMaxPerUser
	}
	return cfg
}

// Validate reports the first problem with cfg (after defaults), wrapping
// ErrInvalidConfig and naming the field.
func (cfg Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"IdleTimeout", cfg.IdleTimeout}, {"AbsoluteTimeout", cfg.AbsoluteTimeout}, {"TouchInterval", cfg.TouchInterval}} {
		if d.v < 0 {
			return bad("%s must not be negative, got %s", d.name, d.v)
		}
	}
	c := cfg.withDefaults()
	// Redis keeps TTLs in milliseconds; below a second is a typo.
	if c.IdleTimeout < time.Second {
		return bad("IdleTimeout must be at least 1s, got %s", c.IdleTimeout)
	}
	if c.AbsoluteTimeout < c.IdleTimeout {
		return bad("AbsoluteTimeout (%s) must not be shorter than IdleTimeout (%s)", c.AbsoluteTimeout, c.IdleTimeout)
	}
	if c.AbsoluteTimeout > 366*24*time.Hour {
		return bad("AbsoluteTimeout must be at most a year, got %s", c.AbsoluteTimeout)
	}
	if c.TouchInterval >= c.IdleTimeout {
		return bad("TouchInterval (%s) must be shorter than IdleTimeout (%s)", c.TouchInterval, c.IdleTimeout)
	}
	if c.MaxPerUser < 1 || c.MaxPerUser > maxMaxPerUser {
		return bad("MaxPerUser must be 1 to %d, got %d", maxMaxPerUser, cfg.MaxPerUser)
	}
	return nil
}
