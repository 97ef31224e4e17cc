package acomm

import (
	"encoding/json"
	"net"
	"strings"
	"testing"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// appendRaw writes none (nil, or empty) as null without checking it,
// refuses what is not JSON unless it is the value checked and unchanged
// since, and lets duplicate names through (the constructors refuse them).
func TestAppendRaw(t *testing.T) {
	raw := func(s string) *json.RawMessage { r := json.RawMessage(s); return &r }
	empty, space, broken, dup := raw(""), raw(" "), raw("{"), raw(`{"a":1,"a":2}`)
	// changed was checked as `{}`, then changed in place.
	changed := raw("{}")
	changedCheck := checkedCopy(changed)
	copy(*changed, "1,")
	tests := []struct {
		name    string
		raw     *json.RawMessage
		checked checkedRaw
		want    string // "" for refused
	}{
		{"nil", nil, checkedRaw{}, "null"},
		{"empty", empty, checkedRaw{}, "null"},
		{"empty, checked", empty, checkedOwn(empty), "null"},
		{"nil slice", new(json.RawMessage), checkedRaw{}, "null"},
		{"whitespace", space, checkedRaw{}, ""},
		{"broken", broken, checkedRaw{}, ""},
		{"broken, checked", broken, checkedOwn(broken), "{"},
		{"broken, checked as it is", broken, checkedCopy(broken), "{"},
		{"broken, another checked", broken, checkedOwn(raw("{")), ""},
		{"changed in place since checked", changed, changedCheck, ""},
		{"null", raw("null"), checkedRaw{}, "null"},
		{"object", raw(`{"a":[1,"x"]}`), checkedRaw{}, `{"a":[1,"x"]}`},
		{"duplicate names", dup, checkedRaw{}, `{"a":1,"a":2}`},
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

// checkedCopy keeps no copy of a value too large: it is checked again.
func TestCheckedCopyBound(t *testing.T) {
	big := json.RawMessage(`"` + strings.Repeat("a", maxCheckedCopy) + `"`)
	assert.False(t, checkedCopy(&big).holds(&big))
	small := json.RawMessage(`"a"`)
	assert.True(t, checkedCopy(&small).holds(&small))
	assert.False(t, checkedCopy(nil).holds(nil))
}

// Args or a result changed in place after NewRequest or NewResponse
// checked them is checked again when the frame is encoded: the bytes
// that would add members to the frame are refused, not sent.
func TestRawChangedAfterCheckIsRefused(t *testing.T) {
	args := json.RawMessage(`{"n":1}`)
	req, err := NewRequest("task", "unix:///tmp/x.sock", args, nil, nil)
	assert.NoError(t, err)
	_, err = req.MarshalJSON()
	assert.NoError(t, err)
	copy(args, `1,"task"`) // args shares its bytes with req.Args
	_, err = req.MarshalJSON()
	assert.ErrorIs(t, err, ErrInvalidRequest)

	result := json.RawMessage(`{"n":1}`)
	resp, err := NewResponse(req, &result, nil, nil)
	assert.NoError(t, err)
	_, err = resp.MarshalJSON()
	assert.NoError(t, err)
	copy(*resp.Result, `1,"id"`)
	_, err = resp.MarshalJSON()
	assert.ErrorIs(t, err, ErrInvalidResponse)
}

// A request or response decoded by UnmarshalJSON or UnmarshalConnData is
// deeply equal to the one sent, made with NewRequest or NewResponse: the
// check those leave behind is left by the decoders too.
func TestDecodedIsDeeplyEqualToMade(t *testing.T) {
	req, err := NewRequest("task", "unix:///tmp/x.sock", map[string]int{"n": 1}, nil, nil)
	require.NoError(t, err)
	resp, err := NewResponse(req, json.RawMessage(`{"ok":true}`), nil, nil)
	require.NoError(t, err)

	data, err := json.Marshal(req)
	require.NoError(t, err)
	var gotReq Request
	require.NoError(t, json.Unmarshal(data, &gotReq))
	assert.Equal(t, req, &gotReq)

	data, err = json.Marshal(resp)
	require.NoError(t, err)
	var gotResp Response
	require.NoError(t, json.Unmarshal(data, &gotResp))
	assert.Equal(t, resp, &gotResp)

	a, b := net.Pipe()
	t.Cleanup(func() { _ = a.Close(); _ = b.Close() })
	sent := make(chan error, 2)
	go func() {
		sent <- SendConnData(a, req)
		sent <- SendConnData(a, resp)
	}()
	var connReq Request
	require.NoError(t, UnmarshalConnData(b, &connReq))
	require.NoError(t, <-sent)
	assert.Equal(t, req, &connReq)
	var connResp Response
	require.NoError(t, UnmarshalConnData(b, &connResp))
	require.NoError(t, <-sent)
	assert.Equal(t, resp, &connResp)
}

// appendString writes what jsontext.AppendQuote writes, by its plain path
// or not.
func TestAppendString(t *testing.T) {
	for _, s := range []string{"", "7f9c2ba4-e88f-4d6b-9a1c-3e0b5d2f8a61", "unix:///run/a.sock?x=1#f", "<&>",
		`a"b`, `a\b`, "a\nb", "\x7f", "é", "\u2028", "\xff", " ~"} {
		want, wantErr := jsontext.AppendQuote([]byte("x:"), s)
		got, err := appendString([]byte("x:"), s)
		assert.Equal(t, string(want), string(got), "%q", s)
		assert.Equal(t, wantErr == nil, err == nil, "%q", s)
	}
}

func BenchmarkAppendString(b *testing.B) {
	const id = "7f9c2ba4-e88f-4d6b-9a1c-3e0b5d2f8a61"
	buf := make([]byte, 0, 64)
	b.Run("appendString", func(b *testing.B) {
		for b.Loop() {
			buf, _ = appendString(buf[:0], id)
		}
	})
	b.Run("jsontext.AppendQuote", func(b *testing.B) {
		for b.Loop() {
			buf, _ = jsontext.AppendQuote(buf[:0], id)
		}
	})
}

// badUTF8 marshals, through encoding/json, to a string holding invalid
// UTF-8, which encoding/json lets through from a RawMessage field.
type badUTF8 struct{ R json.RawMessage }

// What encoding/json makes of args or a result but the wire refuses
// (invalid UTF-8, a lone surrogate) is refused when the request or
// response is made, or when Call is called: never sent.
func TestMarshalledInvalidJSONIsRefused(t *testing.T) {
	for name, v := range map[string]any{
		"invalid UTF-8":   badUTF8{R: json.RawMessage("\"\xff\"")},
		"lone surrogate":  badUTF8{R: json.RawMessage(`"\ud800"`)},
		"nested, invalid": map[string]any{"a": badUTF8{R: json.RawMessage("\"\xfe\"")}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := NewRequest("task", "unix:///tmp/x.sock", v, nil, nil)
			assert.ErrorIs(t, err, ErrInvalidRequest)
			req, err := NewRequest("task", "unix:///tmp/x.sock", nil, nil, nil)
			require.NoError(t, err)
			_, err = NewResponse(req, v, nil, nil)
			assert.ErrorIs(t, err, ErrInvalidResponse)
			_, err = marshalRaw(v)
			assert.Error(t, err)
		})
	}
}

// A connection for one frame does not check the id of its
// acknowledgement (an original peer's never was): any value goes. A kept
// link's must be a string (or null).
func TestAckIDUncheckedOnOnce(t *testing.T) {
	for _, body := range []string{`{"id":5,"error":""}`, `{"id":{},"error":""}`, `{"id":null,"error":""}`, `{"error":""}`} {
		var once ackIDCheck
		_, _, err := decodeAckOf([]byte(body), true, false, &once)
		assert.NoError(t, err, body)
		assert.Nil(t, newAckShape([]byte(body), "a", &once, nil), body)
		kept := ackIDCheck{want: "a"}
		_, _, err = decodeAckOf([]byte(body), false, false, &kept)
		if body == `{"id":null,"error":""}` || body == `{"error":""}` {
			assert.NoError(t, err, body)
		} else {
			assert.ErrorIs(t, err, ErrMalformedFrame, body)
		}
	}
}
