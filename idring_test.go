package acomm

import (
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
)

// The ring forgets the oldest key first, and only the key its slot
// holds: one taken and added again lives on in its new slot.
func TestIDRing(t *testing.T) {
	t.Run("forgets the oldest", func(t *testing.T) {
		var r idRing[string]
		for i := range earlyCancels + 1 {
			r.add(strconv.Itoa(i))
		}
		assert.False(t, r.take("0"))
		assert.True(t, r.take("1"))
		assert.False(t, r.take("1"), "taken once")
		assert.True(t, r.take(strconv.Itoa(earlyCancels)))
	})
	t.Run("a key added again outlives its old slot", func(t *testing.T) {
		var r idRing[string]
		r.add("a") // slot 0
		assert.True(t, r.take("a"))
		r.add("a") // slot 1
		for i := range earlyCancels - 1 {
			r.add(strconv.Itoa(i)) // slots 2 and on, then 0: the old "a"'s
		}
		assert.True(t, r.take("a"), "forgotten with its old slot")
		assert.True(t, r.take("0"), "nothing else was forgotten")
	})
}

// Early notices are kept as hashes: a notice's id and hook, a peer's
// text of any length, are not (issue: hostile notices of 256 KiB each
// were held until 1024 newer ones came).
func TestEarlyKey(t *testing.T) {
	assert.Equal(t, earlyKey("id", "unix:///a"), earlyKey("id", "unix:///a"))
	assert.NotEqual(t, earlyKey("id", "unix:///a"), earlyKey("id", "unix:///b"))
	assert.NotEqual(t, earlyKey("ab", "c"), earlyKey("a", "bc"), "where the id ends is part of the key")
}
