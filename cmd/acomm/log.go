package main

import (
	"os"

	"github.com/sirupsen/logrus"
)

// newLogger returns a logger writing to stderr at the level and in the
// format of --log-level and --log-format.
func newLogger() (*logrus.Logger, error) {
	log := logrus.New()
	log.SetOutput(os.Stderr)
	level, err := logrus.ParseLevel(global.logLevel)
	if err != nil {
		return nil, usageErr("--log-level %q: want debug, info, warn or error", global.logLevel)
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
