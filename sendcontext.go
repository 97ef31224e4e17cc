package acomm

import (
	"context"
	"net/url"
	"time"
)

// SendContext is Send bounded by ctx: it fails with ctx.Err() when ctx has
// ended, and the exchange gets no longer than what is left of ctx's
// deadline.
func SendContext(ctx context.Context, addr *url.URL, payload any) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	cfg := sendDefaults
	if dl, ok := ctx.Deadline(); ok {
		if d := time.Until(dl); d < cfg.ioTimeout {
			if d <= 0 {
				<-ctx.Done()
				return ctx.Err()
			}
			cfg.ioTimeout = d
		}
	}
	return sendHTTPOrUnix(addr, payload, &cfg)
}
