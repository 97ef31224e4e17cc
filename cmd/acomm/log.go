package main

import (
	"fmt"
	"io"
	"os"

	"github.com/sirupsen/logrus"
)

// newLogger returns a logger writing to stderr at the level and in the
// format of --log-level (or --verbose) and --log-format.
func newLogger() (*logrus.Logger, error) {
	log := logrus.New()
	log.SetOutput(os.Stderr)
	level, err := logrus.ParseLevel(global.logLevel)
	if err != nil {
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
// exit status, so that a log collector reads it like the others.
func reportError(w io.Writer, err error, code int) {
	if global.logFormat != "json" {
		fmt.Fprintln(w, "acomm:", message(err))
		return
	}
	log := logrus.New()
	log.SetOutput(w)
	log.SetFormatter(&logrus.JSONFormatter{})
	log.WithField("exit", code).Error(message(err))
}
