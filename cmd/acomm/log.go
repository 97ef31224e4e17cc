package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/sirupsen/logrus"
)

// newLogger returns a logger writing to stderr at the level and in the
// format of --log-level (or --verbose) and --log-format.
func newLogger() (*logrus.Logger, error) {
	log := logrus.New()
	log.SetOutput(os.Stderr)
	// The levels the help lists, not all that logrus takes (trace, panic...).
	level, err := logrus.ParseLevel(global.logLevel)
	if err != nil || !slices.Contains([]string{"debug", "info", "warn", "error"}, global.logLevel) {
		return nil, usageErr("--log-level %q: want debug, info, warn or error", global.logLevel)
	}
	if global.verbose {
		level = max(level, logrus.DebugLevel)
	}
	log.SetLevel(level)
	switch global.logFormat {
	case "text":
		log.SetFormatter(&logrus.TextFormatter{})
	case "json":
		log.SetFormatter(&logrus.JSONFormatter{})
	default:
		return nil, usageErr("--log-format %q: want text or json", global.logFormat)
	}
	return log, nil
}

// reportError writes the error a command ended with to w: one line,
// "acomm: message", or with --log-format json one JSON record with the
// exit status, so that a log collector reads it like the others. The text
// line is made printable: the message may carry a service's or a bridge's
// words.
func reportError(w io.Writer, err error, code int) {
	if global.logFormat != "json" {
		fmt.Fprintln(w, "acomm:", printable(message(err)))
		return
	}
	log := logrus.New()
	log.SetOutput(w)
	log.SetFormatter(&logrus.JSONFormatter{})
	log.WithField("exit", code).Error(message(err))
}

// printable returns s with what would act on a terminal escaped, so that
// text from elsewhere (a service's error, a task's description, a
// bridge's answer) prints as one line that moves no cursor and sets no
// title: newlines and carriage returns as \n and \r, the other C0
// controls but tab, DEL and the bytes that are not UTF-8 as \xNN, C1
// controls, the line and paragraph separators and the bidirectional
// controls (which reorder what a terminal or log viewer shows) as \uNNNN.
// It leaves what it returns unchanged.
func printable(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x20 && r != '\t', r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r >= 0x80 && r < 0xa0, unicode.In(r, unicode.Bidi_Control, unicode.Zl, unicode.Zp):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}
