package acomm

import (
	"bytes"
	"net/url"

	"github.com/go-json-experiment/json/jsontext"
)

// repeats remembers the response hook and the task of the last request
// read on one connection, which the next request on it most often repeats
// (a tracker's own hook; a client calling one task): decoding them again
// would allocate a string and a URL for each request. A repeat is matched
// on the exact JSON text, so it decodes to exactly what the text would.
// It belongs to the connection's reader: not safe for concurrent use.
type repeats struct {
	hookText []byte   // the hook's JSON text, as read
	hook     *url.URL // what it decoded to: copied out, never handed out
	legacy   bool     // whether it was the object form
	taskText []byte   // the task's JSON text, as read
	task     string   // what it decoded to
}

// readHook is readURL, through r's last hook when v repeats it.
func (r *repeats) readHook(v jsontext.Value) (*url.URL, bool, error) {
	if r == nil {
		return readURL(v)
	}
	if r.hook != nil && bytes.Equal(v, r.hookText) {
		u := *r.hook
		return &u, r.legacy, nil
	}
	u, legacy, err := readURL(v)
	if err == nil && u != nil {
		kept := *u
		r.hookText, r.hook, r.legacy = append(r.hookText[:0], v...), &kept, legacy
	}
	return u, legacy, err
}

// readTask is readString, through r's last task when the value repeats
// it.
func (r *repeats) readTask(d *jsontext.Decoder, s *string) error {
	if r == nil || d.PeekKind() != '"' {
		return readString(d, s)
	}
	v, err := d.ReadValue()
	switch {
	case err != nil:
		return err
	case r.taskText != nil && bytes.Equal(v, r.taskText):
		*s = r.task
		return nil
	}
	var text []byte
	if text, err = jsontext.AppendUnquote(nil, v); err != nil {
		return err
	}
	*s = string(text)
	r.taskText, r.task = append(r.taskText[:0], v...), *s
	return nil
}
