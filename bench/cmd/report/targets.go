package main

import (
	"fmt"
	"math"
	"strings"
)

// The performance targets of issue 16, checked against the medians of one
// run. Each is stated once here; the markdown and the chart render them.

const (
	callSystem   = "acomm-call"
	seedOneShot  = "acomm-seed-oneshot"
	seedServer   = "acomm-seed-server"
	fanoutPrefix = "BenchmarkMultiRequestFanout10/"

	// beforeCommit is the commit before issue 16's rewrite; ./run builds
	// it in the same run and renames its acomm-call rows to beforeSystem.
	beforeCommit = "9214427"
	beforeSystem = callSystem + "-" + beforeCommit

	callVsGobMax     = 1.3  // Call seq ÷ netrpc-gob's, at most
	callVsBeforeMax  = 1.0  // Call seq ÷ the code before the rewrite's, at most
	seedServerMax    = 3.5  // seed cycle against a Server ÷ floor-kept, at most
	oneShotMax       = 1.2  // seed cycle against a one-shot service ÷ (floor-dial + floor-kept), at most
	fanoutServerMax  = 60e3 // fan-out to 10 Servers with SendAll, ns
	fanoutOneShotMax = 1.3  // fan-out to 10 one-shot services with SendAll ÷ fanoutFloor, at most
	callAllocsMax    = 20   // allocs per Call, client and server
)

// The cases of BenchmarkMultiRequestFanout10 that the targets name.
const (
	fanoutServer  = "server-send-all"
	fanoutOneShot = "oneshot-send-all"
	fanoutFloor   = "floor-dial-10"
	// The floors of the fan-outs themselves, which show a target that no
	// code can meet on the machine of the run (see pastFloor).
	fanoutServerFloor  = "floor-kept-10"
	fanoutServerFloor2 = "floor-pipelined-10" // the lower of the two is the floor
	fanoutOneShotFloor = "floor-dial-kept-10"
)

// verdict is the outcome of one target.
type verdict int

const (
	noData verdict = iota
	met
	missed
	// pastFloor is missed, with the target beyond its own floor measured
	// in the same run: raw frames, without acomm, doing what the target's
	// case must do at the least, do not meet it either.
	pastFloor
)

func (v verdict) String() string {
	switch v {
	case met:
		return "met"
	case missed:
		return "missed"
	case pastFloor:
		return "missed: past its floor"
	}
	return "no data"
}

// floorJudge is judge, with pastFloor for a miss when floorOK, whether the
// target's own floor meets it, is false (and the floor was measured).
func floorJudge(ok, floorOK bool, floor float64, vs ...float64) verdict {
	v := judge(ok, vs...)
	if v == missed && !math.IsNaN(floor) && !floorOK {
		return pastFloor
	}
	return v
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
	fanoutServer:        "10 Servers, SendAll",
	fanoutOneShot:       "10 one-frame-per-connection services, SendAll",
	"oneshot-send-each": "10 one-frame-per-connection services, Send each in turn",
	fanoutFloor:         "ten concurrent floor-dials",
	fanoutServerFloor:   "ten concurrent floor-kept round trips",
	fanoutServerFloor2:  "ten floor-kept frames written, then their ten echoes read, on one goroutine",
	fanoutOneShotFloor:  "ten concurrent floor-dials, each followed by a floor-kept round trip",
}

// isPeer reports whether an echo system is one of the peers acomm must
// beat: neither a floor nor acomm itself.
func isPeer(system string) bool {
	return system != floorKept && system != floorDial && !strings.HasPrefix(system, "acomm")
}

// targets evaluates issue 16's targets on r.
func targets(r *results) []target {
	nan := math.NaN()
	rows := echoRows(r)
	row := func(sys string) echoRow {
		for _, row := range rows {
			if row.system == sys {
				return row
			}
		}
		return echoRow{system: sys, seqNs: nan, seqAllocs: nan, seqVsKept: nan, seqVsDial: nan, parOps: nan, parVsKept: nan}
	}
	kept, dial, call := row(floorKept), row(floorDial), row(callSystem)

	// The peer with the most throughput in par64.
	parPeer := echoRow{system: "–", parOps: nan}
	for _, row := range rows {
		if isPeer(row.system) && !math.IsNaN(row.parOps) && (math.IsNaN(parPeer.parOps) || row.parOps > parPeer.parOps) {
			parPeer = row
		}
	}
	fanout := func(c string) float64 {
		if b := r.get(fanoutPrefix + c); b != nil {
			v, _ := b.median("ns/op")
			return v
		}
		return nan
	}

	us := func(ns float64) string { return withUnit(fmtFixed(ns/1e3, 2), " µs") }
	ops := func(v float64) string { return withUnit(fmtInt(v), " ops/s") }
	var out []target
	add := func(t target) { out = append(out, t) }

	// ratioAtMost is a target on figure's ratio to a yardstick's figure:
	// at most limit.
	ratioAtMost := func(name, short, figure string, ratio float64, yardstick, yardFigure string, limit float64) target {
		return target{
			name:      name,
			measured:  fmt.Sprintf("%s = %s %s (%s)", figure, fmtRatio(ratio), yardstick, yardFigure),
			threshold: "≤ " + fmtRatio(limit),
			verdict:   judge(ratio <= limit, ratio),
			short:     fmt.Sprintf("%s %s %s (≤ %s)", short, fmtRatio(ratio), yardstick, fmtRatio(limit)),
		}
	}

	// Call seq against the JSON peers: faster than each.
	{
		jsonPeers := []echoRow{row("netrpc-json"), row("varlink")}
		ok, vs := true, []float64{call.seqNs}
		var figs, shorts []string
		for _, p := range jsonPeers {
			ok = ok && call.seqNs < p.seqNs
			vs = append(vs, p.seqNs)
			figs = append(figs, fmt.Sprintf("%s %s (Call %s it)", p.system, us(p.seqNs), fmtRatio(call.seqNs/p.seqNs)))
			shorts = append(shorts, fmt.Sprintf("%s %s", fmtRatio(call.seqNs/p.seqNs), p.system))
		}
		add(target{
			name:      "Call sequential faster than the JSON peers (netrpc-json, varlink)",
			measured:  us(call.seqNs) + "; " + strings.Join(figs, ", "),
			threshold: "< each",
			verdict:   judge(ok, vs...),
			short:     "Call seq " + strings.Join(shorts, ", ") + " (< 1.00× each)",
		})
	}
	gob := row("netrpc-gob")
	add(ratioAtMost("Call sequential ≤ 1.3× netrpc-gob", "Call seq",
		us(call.seqNs), call.seqNs/gob.seqNs, gob.system, us(gob.seqNs), callVsGobMax))
	before := row(beforeSystem)
	add(ratioAtMost("Call sequential not slower than the code before the rewrite ("+beforeSystem+", built in the same run)", "Call seq",
		us(call.seqNs), call.seqNs/before.seqNs, before.system, us(before.seqNs), callVsBeforeMax))
	add(target{
		name:      "Call 64 in flight ahead of every peer",
		measured:  fmt.Sprintf("%s; best peer %s %s (Call %s it)", ops(call.parOps), parPeer.system, ops(parPeer.parOps), fmtRatio(call.parOps/parPeer.parOps)),
		threshold: "> best peer",
		verdict:   judge(call.parOps > parPeer.parOps, call.parOps, parPeer.parOps),
		short:     fmt.Sprintf("Call par64 %s best peer (> 1.00×)", fmtRatio(call.parOps/parPeer.parOps)),
	})
	srv, one := row(seedServer), row(seedOneShot)
	add(ratioAtMost("Seed cycle, Server ("+seedServer+" seq) ≤ 3.5× floor-kept (two exchanges: 2× is the floor)", "Seed cycle, Server",
		us(srv.seqNs), srv.seqVsKept, floorKept, us(kept.seqNs), seedServerMax))
	both := dial.seqNs + kept.seqNs
	add(ratioAtMost("Seed cycle, one-frame-per-connection service ("+seedOneShot+" seq) ≤ 1.2× (floor-dial + floor-kept)", "Seed cycle, one-shot service",
		us(one.seqNs), one.seqNs/both, "floor-dial + floor-kept", us(both), oneShotMax))
	// The fan-outs, each with its own floor when the run measured it.
	srvFan, srvFloor, srvFloorName := fanout(fanoutServer), fanout(fanoutServerFloor), fanoutServerFloor
	if f2 := fanout(fanoutServerFloor2); f2 < srvFloor || math.IsNaN(srvFloor) {
		srvFloor, srvFloorName = f2, fanoutServerFloor2
	}
	srvTarget := target{
		name:      "MultiRequest fan-out to " + fanoutCases[fanoutServer] + " (" + fanoutServer + ") ≤ 60 µs",
		measured:  us(srvFan),
		threshold: "≤ " + us(fanoutServerMax),
		verdict:   floorJudge(srvFan <= fanoutServerMax, srvFloor <= fanoutServerMax, srvFloor, srvFan),
		short:     "Fan-out " + fanoutServer + " " + us(srvFan) + " (≤ " + us(fanoutServerMax) + ")",
	}
	if !math.IsNaN(srvFloor) {
		srvTarget.measured += fmt.Sprintf(" = %s its floor, %s (%s: %s)", fmtRatio(srvFan/srvFloor), srvFloorName, fanoutCases[srvFloorName], us(srvFloor))
		srvTarget.short += fmt.Sprintf("; floor %s", us(srvFloor))
	}
	add(srvTarget)
	oneFan, floorFan, oneFloor := fanout(fanoutOneShot), fanout(fanoutFloor), fanout(fanoutOneShotFloor)
	oneTarget := ratioAtMost("MultiRequest fan-out to "+fanoutCases[fanoutOneShot]+" ("+fanoutOneShot+") ≤ 1.3× "+fanoutCases[fanoutFloor]+" ("+fanoutFloor+")",
		"Fan-out "+fanoutOneShot, us(oneFan), oneFan/floorFan, fanoutFloor, us(floorFan), fanoutOneShotMax)
	if !math.IsNaN(oneFloor) {
		oneTarget.verdict = floorJudge(oneFan/floorFan <= fanoutOneShotMax, oneFloor/floorFan <= fanoutOneShotMax, oneFloor, oneFan/floorFan)
		oneTarget.measured += fmt.Sprintf("; its floor, %s (%s): %s = %s %s, and %s = %s it", fanoutOneShotFloor, fanoutCases[fanoutOneShotFloor],
			us(oneFloor), fmtRatio(oneFloor/floorFan), fanoutFloor, fanoutOneShot, fmtRatio(oneFan/oneFloor))
		oneTarget.short += fmt.Sprintf("; floor %s", fmtRatio(oneFloor/floorFan))
	}
	add(oneTarget)
	add(target{
		name:      "Allocations per Call, client and server (" + callSystem + " seq allocs/op) ≤ 20",
		measured:  fmtInt(call.seqAllocs),
		threshold: "≤ " + fmtInt(callAllocsMax),
		verdict:   judge(call.seqAllocs <= callAllocsMax, call.seqAllocs),
		short:     "Allocs per Call " + fmtInt(call.seqAllocs) + " (≤ " + fmtInt(callAllocsMax) + ")",
	})
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
	w.WriteString("## Issue 16 targets\n\n")
	w.WriteString("Each target of issue 16, checked against the medians of this run (the tables below). ")
	w.WriteString("Peers are the echo systems that are neither a floor nor acomm (net/rpc with gob or JSON-RPC, ttrpc, varlink, gRPC). ")
	w.WriteString("`" + beforeSystem + "` is acomm-call built from commit " + beforeCommit + ", the code before the rewrite, in the same run; ")
	w.WriteString("a run without that commit (a shallow clone) has no data for it. ")
	w.WriteString("A verdict is only as good as the run's figures: see the load average above, and the spread in benchstat's summary at the end.\n\n")
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
