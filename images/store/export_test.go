package store

import (
	"context"
	"time"
)

// WithSleep replaces the retry policy's wait, so that tests can record the schedule instead of
// waiting it out.
func WithSleep(f func(ctx context.Context, d time.Duration) error) Option {
	return func(o *options) { o.retry.sleep = f }
}
