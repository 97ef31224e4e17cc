package acomm

import (
	"context"
	"fmt"
	"maps"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// Limits on Request.Meta. A request beyond them is refused with an error
// matching ErrInvalidRequest: by Call and NewRequest's Validate before it
// is sent, and by a receiver in its acknowledgement.
const (
	// MaxMetaEntries is the most entries Request.Meta may have.
	MaxMetaEntries = 64
	// MaxMetaSize is the most bytes its keys and values may have
	// together, the size of a typical HTTP server's header limit.
	MaxMetaSize = 8 << 10
	// MaxMetaKeyLen is the longest a key may be.
	MaxMetaKeyLen = 128
)

// Meta keys are, as gRPC's metadata keys, lowercase: letters a-z, digits,
// '-', '_' and '.', so that a bridge can carry each one as an HTTP header
// (Acomm-Meta-<key>, or traceparent and tracestate as they are) and get
// the same key back. Values may be any text without control characters
// (a tab aside), so that they are valid header values.

// validateMeta checks m against the limits and the form of keys and
// values.
func validateMeta(m map[string]string) error {
	if len(m) > MaxMetaEntries {
		return fmt.Errorf("%w: meta has %d entries (at most %d)", ErrInvalidRequest, len(m), MaxMetaEntries)
	}
	size := 0
	for k, v := range m {
		if err := checkMetaKey(k); err != nil {
			return err
		}
		for i := 0; i < len(v); i++ {
			if c := v[i]; c < 0x20 && c != '\t' || c == 0x7f {
				return fmt.Errorf("%w: meta %q: value has a control character", ErrInvalidRequest, k)
			}
		}
		size += len(k) + len(v)
	}
	if size > MaxMetaSize {
		return fmt.Errorf("%w: meta has %d bytes (at most %d)", ErrInvalidRequest, size, MaxMetaSize)
	}
	return nil
}

// checkMetaKey checks the form of a meta key.
func checkMetaKey(k string) error {
	if k == "" || len(k) > MaxMetaKeyLen {
		return fmt.Errorf("%w: meta key %q: want 1 to %d bytes", ErrInvalidRequest, k, MaxMetaKeyLen)
	}
	for i := 0; i < len(k); i++ {
		switch c := k[i]; {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_', c == '.':
		default:
			return fmt.Errorf("%w: meta key %q: only a-z, 0-9, '-', '_' and '.' are allowed", ErrInvalidRequest, k)
		}
	}
	return nil
}

// metaValue returns the wire value of meta, its keys sorted; nil for no
// entries, which are not written.
func metaValue(m map[string]string) (jsontext.Value, error) {
	if len(m) == 0 {
		return nil, nil
	}
	v, err := jsonv2.Marshal(m, jsonv2.Deterministic(true))
	if err != nil {
		return nil, fmt.Errorf("%w: meta: %w", ErrInvalidRequest, err)
	}
	return v, nil
}

// metaKey is the context key of the meta set by ContextWithMeta.
type metaKey struct{}

// ContextWithMeta returns a copy of ctx that carries meta: Call sends it
// as the request's Meta. Entries already in ctx are kept unless meta
// gives the same key, so that a middleware can add trace context to the
// meta its caller set. The map is copied; Call checks it against the
// limits (see MaxMetaEntries).
func ContextWithMeta(ctx context.Context, meta map[string]string) context.Context {
	if len(meta) == 0 {
		return ctx
	}
	old, _ := ctx.Value(metaKey{}).(map[string]string)
	m := make(map[string]string, len(old)+len(meta))
	maps.Copy(m, old)
	maps.Copy(m, meta)
	return context.WithValue(ctx, metaKey{}, m)
}

// metaFromContext returns the meta set on ctx by ContextWithMeta, which
// must not be changed, or nil.
func metaFromContext(ctx context.Context) map[string]string {
	m, _ := ctx.Value(metaKey{}).(map[string]string)
	return m
}
