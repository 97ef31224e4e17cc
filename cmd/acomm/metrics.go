package main

import (
	"time"

	"github.com/acommgo/acomm"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// trackerCollector exposes a tracker's Stats as Prometheus metrics, read
// once per scrape.
type trackerCollector struct {
	tracker  *acomm.Tracker
	inFlight *prometheus.Desc
	counters []trackerCounter
}

// trackerCounter is one counter of TrackerStats.
type trackerCounter struct {
	desc  *prometheus.Desc
	value func(acomm.TrackerStats) uint64
}

// newTrackerCollector returns a collector of t's stats.
func newTrackerCollector(t *acomm.Tracker) *trackerCollector {
	counter := func(name, help string, v func(acomm.TrackerStats) uint64) trackerCounter {
		return trackerCounter{prometheus.NewDesc("acomm_tracker_"+name+"_total", help, nil, nil), v}
	}
	return &trackerCollector{
		tracker:  t,
		inFlight: prometheus.NewDesc("acomm_tracker_in_flight", "Requests tracked now, awaiting their answer.", nil, nil),
		counters: []trackerCounter{
			counter("tracked", "Requests accepted for tracking.", func(s acomm.TrackerStats) uint64 { return s.Tracked }),
			counter("answered", "Requests handled (or forwarded) on their answer.", func(s acomm.TrackerStats) uint64 { return s.Answered }),
			counter("timed_out", "Requests handled with a timeout error.", func(s acomm.TrackerStats) uint64 { return s.TimedOut }),
			counter("removed", "Requests removed before an answer.", func(s acomm.TrackerStats) uint64 { return s.Removed }),
			counter("abandoned", "Requests abandoned at shutdown.", func(s acomm.TrackerStats) uint64 { return s.Abandoned }),
			counter("refused", "Requests refused for tracking (not running, duplicate, limit).", func(s acomm.TrackerStats) uint64 { return s.Refused }),
			counter("dropped_unknown", "Answers for requests not tracked (late, unknown).", func(s acomm.TrackerStats) uint64 { return s.DroppedUnknown }),
			counter("refused_frames", "Frames refused at the response socket.", func(s acomm.TrackerStats) uint64 { return s.RefusedFrames }),
			counter("refused_conns", "Connections refused (peer check, connection bound).", func(s acomm.TrackerStats) uint64 { return s.RefusedConns }),
			counter("streams", "Streams served.", func(s acomm.TrackerStats) uint64 { return s.Streams }),
			counter("cancel_notices", "Cancel notices sent to services (a caller gave up, a request timed out or was removed).", func(s acomm.TrackerStats) uint64 { return s.CancelNotices }),
		},
	}
}

// Describe implements prometheus.Collector.
func (c *trackerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.inFlight
	for _, m := range c.counters {
		ch <- m.desc
	}
}

// Collect implements prometheus.Collector.
func (c *trackerCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.tracker.Stats()
	ch <- prometheus.MustNewConstMetric(c.inFlight, prometheus.GaugeValue, float64(s.InFlight))
	for _, m := range c.counters {
		ch <- prometheus.MustNewConstMetric(m.desc, prometheus.CounterValue, float64(m.value(s)))
	}
}

// bridgeMetrics are the metrics of acomm bridge.
type bridgeMetrics struct {
	registry   *prometheus.Registry
	deliveries *prometheus.HistogramVec
}

// newBridgeMetrics registers the tracker's stats, hook-delivery latency,
// and the Go runtime's and process's metrics.
func newBridgeMetrics(t *acomm.Tracker) *bridgeMetrics {
	m := &bridgeMetrics{
		registry: prometheus.NewRegistry(),
		deliveries: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "acomm_bridge_hook_delivery_seconds",
			Help:    "Time to deliver an answer to a caller's HTTP hook, by result (ok: the hook acknowledged it).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10), // 0.5 ms to about 2 min
		}, []string{"result"}),
	}
	m.registry.MustRegister(newTrackerCollector(t), m.deliveries,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// observeDelivery records one hook delivery (bridge.Bridge.OnDelivery).
func (m *bridgeMetrics) observeDelivery(took time.Duration, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.deliveries.WithLabelValues(result).Observe(took.Seconds())
}
