package acomm

import (
	"testing"

	guuid "github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// Request IDs are random (version 4) UUIDs of RFC 9562's variant, in the
// canonical form, and do not repeat.
func TestNewIDIsRandomUUID(t *testing.T) {
	seen := make(map[string]bool)
	for range 10_000 {
		id := newID()
		u, err := guuid.Parse(id)
		require.NoError(t, err, id)
		require.Equal(t, guuid.Version(4), u.Version(), id)
		require.Equal(t, guuid.RFC4122, u.Variant(), id)
		require.Equal(t, u.String(), id, "canonical form")
		require.False(t, seen[id], "repeated: %s", id)
		seen[id] = true
	}
}

func BenchmarkNewID(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = newID()
	}
}
