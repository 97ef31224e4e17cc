package main

import (
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/acommgo/acomm"
	"github.com/stretchr/testify/assert"
)

func TestTrackerCollectorHasEveryCounter(t *testing.T) {
	// --metrics serves the Stats counters: each one, including those
	// added to TrackerStats after the collector was written.
	c := newTrackerCollector(nil)
	var names []string
	for _, m := range c.counters {
		names = append(names, m.desc.String())
	}
	all := strings.Join(names, "\n")
	camel := regexp.MustCompile(`([a-z])([A-Z])`)
	st := reflect.TypeFor[acomm.TrackerStats]()
	for i := range st.NumField() {
		f := st.Field(i)
		if f.Type.Kind() != reflect.Uint64 {
			continue
		}
		name := "acomm_tracker_" + strings.ToLower(camel.ReplaceAllString(f.Name, "${1}_${2}")) + "_total"
		assert.Contains(t, all, `"`+name+`"`, "TrackerStats.%s", f.Name)
	}
}
