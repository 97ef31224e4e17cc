package acomm

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
)

// appendRaw writes none (nil, or empty) as null without checking it,
// refuses what is not JSON unless it is the value marshalRaw checked, and
// lets duplicate names through (the constructors refuse them).
func TestAppendRaw(t *testing.T) {
	raw := func(s string) *json.RawMessage { r := json.RawMessage(s); return &r }
	empty, space, broken, dup := raw(""), raw(" "), raw("{"), raw(`{"a":1,"a":2}`)
	tests := []struct {
		name         string
		raw, checked *json.RawMessage
		want         string // "" for refused
	}{
		{"nil", nil, nil, "null"},
		{"empty", empty, nil, "null"},
		{"empty, checked", empty, empty, "null"},
		{"nil slice", new(json.RawMessage), nil, "null"},
		{"whitespace", space, nil, ""},
		{"broken", broken, nil, ""},
		{"broken, checked", broken, broken, "{"},
		{"broken, another checked", broken, raw("{"), ""},
		{"null", raw("null"), nil, "null"},
		{"object", raw(`{"a":[1,"x"]}`), nil, `{"a":[1,"x"]}`},
		{"duplicate names", dup, nil, `{"a":1,"a":2}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := appendRaw([]byte("x:"), tt.raw, tt.checked)
			if tt.want == "" {
				assert.ErrorIs(t, err, ErrInvalidArgument)
				assert.Equal(t, "x:", string(got), "nothing appended")
				return
			}
			assert.NoError(t, err)
			assert.Equal(t, "x:"+tt.want, string(got))
		})
	}
}
