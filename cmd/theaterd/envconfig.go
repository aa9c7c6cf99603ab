package main

// Temporary: a minimal reading of the environment until internal/config
// lands; it will replace this file.

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/theaterscriptpro/tsp/internal/httpapi"
	"github.com/theaterscriptpro/tsp/ratelimit"
	"github.com/theaterscriptpro/tsp/redisx"
)

type config struct {
	HTTPAddr        string
	Redis           redisx.Config
	DatabaseURL     string
	RateLimitAPI    ratelimit.Rate
	RateLimitLogin  ratelimit.Rate
	ShutdownTimeout time.Duration
	LogLevel        slog.Level
}

func loadConfig(getenv func(string) string) (config, error) {
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", name, fmt.Sprintf(format, args...)))
	}
	or := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	cfg := config{HTTPAddr: or("HTTP_ADDR", ":8080"), DatabaseURL: or("DATABASE_URL", "sqlite:./data/theater.db")}
	if u := getenv("REDIS_URL"); u != "" {
		rc, err := redisx.ParseURL(u)
		if err != nil {
			bad("REDIS_URL", "%s", strings.TrimPrefix(err.Error(), "redisx: invalid config: "))
		}
		cfg.Redis = rc
	} else {
		port, err := strconv.Atoi(or("REDIS_PORT", "6379"))
		if err != nil || port < 1 || port > 65535 {
			bad("REDIS_PORT", "must be 1-65535")
		}
		db, err := strconv.Atoi(or("REDIS_DB", "0"))
		if err != nil || db < 0 {
			bad("REDIS_DB", "must be a database number")
		}
		cfg.Redis = redisx.Config{Addrs: []string{or("REDIS_HOST", "localhost") + ":" + strconv.Itoa(port)}, Password: getenv("REDIS_PASSWORD"), DB: db}
	}
	cfg.Redis.KeyPrefix = getenv("REDIS_KEY_PREFIX")
	var err error
	if cfg.RateLimitAPI, err = ratelimit.ParseRate(or("RATE_LIMIT_API", "600/1m")); err != nil {
		bad("RATE_LIMIT_API", "%v", err)
	}
	if cfg.RateLimitLogin, err = ratelimit.ParseRate(or("RATE_LIMIT_LOGIN", "5/1m")); err != nil {
		bad("RATE_LIMIT_LOGIN", "%v", err)
	}
	if cfg.ShutdownTimeout, err = time.ParseDuration(or("SHUTDOWN_TIMEOUT", "15s")); err != nil || cfg.ShutdownTimeout <= 0 {
		bad("SHUTDOWN_TIMEOUT", "must be a positive Go duration such as 15s")
	}
	if err := cfg.LogLevel.UnmarshalText([]byte(or("LOG_LEVEL", "info"))); err != nil {
		bad("LOG_LEVEL", "must be debug, info, warn or error")
	}
	if !strings.HasPrefix(cfg.DatabaseURL, "sqlite:") && !strings.HasPrefix(cfg.DatabaseURL, "postgres://") && !strings.HasPrefix(cfg.DatabaseURL, "postgresql://") {
		bad("DATABASE_URL", "must start with sqlite: or postgres://")
	}
	return cfg, errors.Join(errs...)
}

func wireToolkit(d *httpapi.Deps, cfg config, rdb *redisx.Client) error {
	d.APIRate, d.LoginRate = cfg.RateLimitAPI, cfg.RateLimitLogin
	return nil
}
