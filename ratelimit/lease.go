package ratelimit

import (
	"context"
	"errors"
)

// LeaseConfig turns on quota leasing (see Config.Lease).
type LeaseConfig struct {
	// Enabled turns leasing on.
	Enabled bool
}

func (c LeaseConfig) validate() error {
	if c.Enabled {
		return errors.New("not implemented yet")
	}
	return nil
}

type leaser struct{}

func newLeaser(*Limiter) *leaser { return &leaser{} }

func (*leaser) take(context.Context, string, int) (Decision, bool) { return Decision{}, false }
func (*leaser) refund(Decision)                                    {}
func (*leaser) drop(string)                                        {}
