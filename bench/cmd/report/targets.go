package main

import (
	"fmt"
	"math"
	"strings"
)

// The performance targets of issue 9, checked against the medians of one
// run. Each is stated once here; the markdown and the chart render them.

const (
	callSystem    = "acomm-call"
	seedOneShot   = "acomm-seed-oneshot"
	seedServer    = "acomm-seed-server"
	fanoutPrefix  = "BenchmarkMultiRequestFanout10/"
	callSeqMax    = 1.5 // Call seq latency ÷ floor-kept's, at most
	callParMin    = 1.0 // Call par64 throughput ÷ floor-kept's, at least
	oneShotMax    = 1.1 // seed cycle against a one-shot service ÷ floor-dial, at most
	seedServerMax = 2.0 // seed cycle against a Server ÷ floor-kept, at most
	fanoutMaxNs   = 100e3
)

// verdict is the outcome of one target.
type verdict int

const (
	noData verdict = iota
	met
	missed
)

func (v verdict) String() string {
	switch v {
	case met:
		return "met"
	case missed:
		return "missed"
	}
	return "no data"
}

// judge is met if ok, missed if not, and noData if any of vs is NaN.
func judge(ok bool, vs ...float64) verdict {
	for _, v := range vs {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return noData
		}
	}
	if ok {
		return met
	}
	return missed
}

// target is one target with what this run measured for it.
type target struct {
	name      string // what is compared
	measured  string // the run's figures
	threshold string // what the target asks
	verdict   verdict
	short     string // a one-line summary for the chart
}

// fanoutCases describes the known cases of BenchmarkMultiRequestFanout10.
var fanoutCases = map[string]string{
	"server-send-all":   "10 Servers, SendAll",
	"oneshot-send-all":  "10 one-frame-per-connection services, SendAll",
	"oneshot-send-each": "10 one-frame-per-connection services, Send each in turn",
}

// isPeer reports whether an echo system is one of the peers acomm must
// beat: neither a floor nor acomm itself.
func isPeer(system string) bool {
	return system != floorKept && system != floorDial && !strings.HasPrefix(system, "acomm")
}

// targets evaluates issue 9's targets on r.
func targets(r *results) []target {
	nan := math.NaN()
	rows := echoRows(r)
	row := func(sys string) echoRow {
		for _, row := range rows {
			if row.system == sys {
				return row
			}
		}
		return echoRow{system: sys, seqNs: nan, seqVsKept: nan, seqVsDial: nan, parOps: nan, parVsKept: nan}
	}
	kept, dial, call := row(floorKept), row(floorDial), row(callSystem)

	// The fastest peer in seq, the one with the most throughput in par64.
	seqPeer, parPeer := echoRow{seqNs: nan}, echoRow{parOps: nan}
	for _, row := range rows {
		if !isPeer(row.system) {
			continue
		}
		if !math.IsNaN(row.seqNs) && (math.IsNaN(seqPeer.seqNs) || row.seqNs < seqPeer.seqNs) {
			seqPeer = row
		}
		if !math.IsNaN(row.parOps) && (math.IsNaN(parPeer.parOps) || row.parOps > parPeer.parOps) {
			parPeer = row
		}
	}

	us := func(ns float64) string { return withUnit(fmtFixed(ns/1e3, 2), " µs") }
	ops := func(v float64) string { return withUnit(fmtInt(v), " ops/s") }
	var out []target
	add := func(t target) { out = append(out, t) }

	// vsFloor is a target on figure's ratio to a floor's figure: at most
	// limit if atMost, else at least limit.
	vsFloor := func(name, short, figure string, ratio float64, floor, floorFigure string, atMost bool, limit float64) target {
		cmp, ok := "≥ ", ratio >= limit
		if atMost {
			cmp, ok = "≤ ", ratio <= limit
		}
		return target{
			name:      name,
			measured:  fmt.Sprintf("%s = %s %s (%s)", figure, fmtRatio(ratio), floor, floorFigure),
			threshold: cmp + fmtRatio(limit),
			verdict:   judge(ok, ratio),
			short:     fmt.Sprintf("%s %s %s (%s%s)", short, fmtRatio(ratio), floor, cmp, fmtRatio(limit)),
		}
	}
	// vsPeer is a target on beating the best peer: a lower figure if
	// lower, else a higher one.
	vsPeer := func(name, short, figure string, v float64, peer, peerFigure string, pv float64, lower bool) target {
		best, ok, cmp := "best", v > pv, ">"
		if lower {
			best, ok, cmp = "fastest", v < pv, "<"
		}
		return target{
			name:      name,
			measured:  fmt.Sprintf("%s; %s peer %s %s (Call %s it)", figure, best, peer, peerFigure, fmtRatio(v/pv)),
			threshold: cmp + " " + best + " peer",
			verdict:   judge(ok, v, pv),
			short:     fmt.Sprintf("%s %s %s peer (%s 1.00×)", short, fmtRatio(v/pv), best, cmp),
		}
	}
	add(vsFloor("Call sequential ≤ 1.5× floor-kept", "Call seq",
		us(call.seqNs), call.seqVsKept, floorKept, us(kept.seqNs), true, callSeqMax))
	add(vsPeer("Call sequential faster than every peer", "Call seq",
		us(call.seqNs), call.seqNs, seqPeer.system, us(seqPeer.seqNs), seqPeer.seqNs, true))
	add(vsFloor("Call 64 in flight ≥ 1.0× floor-kept throughput", "Call par64",
		ops(call.parOps), call.parVsKept, floorKept, ops(kept.parOps), false, callParMin))
	add(vsPeer("Call 64 in flight ahead of every peer", "Call par64",
		ops(call.parOps), call.parOps, parPeer.system, ops(parPeer.parOps), parPeer.parOps, false))
	one, srv := row(seedOneShot), row(seedServer)
	add(vsFloor("Seed cycle, one-frame-per-connection service ("+seedOneShot+" seq) ≤ 1.1× floor-dial", "Seed cycle, one-shot service",
		us(one.seqNs), one.seqVsDial, floorDial, us(dial.seqNs), true, oneShotMax))
	add(vsFloor("Seed cycle, Server ("+seedServer+" seq) ≤ 2× floor-kept", "Seed cycle, Server",
		us(srv.seqNs), srv.seqVsKept, floorKept, us(kept.seqNs), true, seedServerMax))
	fanouts := 0
	for _, name := range r.order {
		c, ok := strings.CutPrefix(name, fanoutPrefix)
		if !ok {
			continue
		}
		fanouts++
		what := fanoutCases[c]
		if what == "" {
			what = c
		}
		ns, _ := r.get(name).median("ns/op")
		add(target{
			name:      "MultiRequest fan-out to " + what + " (" + c + ") ≤ 100 µs",
			measured:  us(ns),
			threshold: "≤ " + us(fanoutMaxNs),
			verdict:   judge(ns <= fanoutMaxNs, ns),
			short:     "Fan-out " + c + " " + us(ns) + " (≤ " + us(fanoutMaxNs) + ")",
		})
	}
	if fanouts == 0 {
		add(target{
			name: "MultiRequest fan-out to 10 services ≤ 100 µs", measured: "–",
			threshold: "≤ " + us(fanoutMaxNs), short: "Fan-out: no data",
		})
	}
	return out
}

// withUnit appends unit to a formatted figure, unless it is "–" (none).
func withUnit(figure, unit string) string {
	if figure == "–" {
		return figure
	}
	return figure + unit
}

// targetsMarkdown renders the targets section of BENCHMARKS.md.
func targetsMarkdown(ts []target) string {
	var w strings.Builder
	count := map[verdict]int{}
	for _, t := range ts {
		count[t.verdict]++
	}
	w.WriteString("## Issue 9 targets\n\n")
	w.WriteString("Each target of issue 9, checked against the medians of this run (the tables below). ")
	w.WriteString("Peers are the echo systems that are neither a floor nor acomm. ")
	w.WriteString("A verdict is only as good as the run's figures: see the load average above, and the spread in benchstat's summary at the end. ")
	w.WriteString("The issue's other target, the size of the transport, is not a benchmark and is not checked here.\n\n")
	fmt.Fprintf(&w, "**%d of %d met**", count[met], len(ts))
	if count[noData] > 0 {
		fmt.Fprintf(&w, " (%d without data in this run)", count[noData])
	}
	w.WriteString(".\n\n")
	w.WriteString("| target | measured | wanted | verdict |\n|---|---|---|---|\n")
	for _, t := range ts {
		v := t.verdict.String()
		if t.verdict != noData {
			v = "**" + v + "**"
		}
		fmt.Fprintf(&w, "| %s | %s | %s | %s |\n", mdCell(t.name), mdCell(t.measured), mdCell(t.threshold), v)
	}
	w.WriteString("\n")
	return w.String()
}
