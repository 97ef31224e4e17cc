package main

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// benchmark is every sample of one benchmark found in go test -bench
// output, by unit ("ns/op", "B/op", "allocs/op", "MB/s", "ops/s", ...).
type benchmark struct {
	name    string // as printed, less the -GOMAXPROCS suffix
	procs   int    // that suffix, 1 if none
	samples map[string][]float64
	units   []string // in the order first printed
}

// median returns the median of the samples of unit, and false if there
// are none.
func (b *benchmark) median(unit string) (float64, bool) {
	s := b.samples[unit]
	if len(s) == 0 {
		return math.NaN(), false
	}
	return median(s), true
}

// runs is the number of result lines seen for b.
func (b *benchmark) runs() int { return len(b.samples["ns/op"]) }

// results is a parsed go test -bench output.
type results struct {
	byName map[string]*benchmark
	order  []string          // benchmark names, first seen first
	config map[string]string // goos, goarch, pkg, cpu lines
}

func (r *results) get(name string) *benchmark { return r.byName[name] }

// configKeys are the configuration lines go test prints before results.
var configKeys = map[string]bool{"goos": true, "goarch": true, "pkg": true, "cpu": true}

var procsSuffix = regexp.MustCompile(`-(\d+)$`)

// parse reads go test -bench output (one or several runs, concatenated).
// Lines that are not results or configuration are ignored.
func parse(in io.Reader) (*results, error) {
	r := &results{byName: map[string]*benchmark{}, config: map[string]string{}}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if k, v, ok := strings.Cut(line, ": "); ok && configKeys[k] {
			if _, seen := r.config[k]; !seen {
				r.config[k] = strings.TrimSpace(v)
			}
			continue
		}
		if !strings.HasPrefix(line, "Benchmark") {
			continue
		}
		f := strings.Fields(line)
		// name iterations value unit [value unit]...
		if len(f) < 4 || len(f)%2 != 0 {
			continue
		}
		if _, err := strconv.Atoi(f[1]); err != nil {
			continue
		}
		name, procs := f[0], 1
		if m := procsSuffix.FindStringSubmatch(name); m != nil {
			procs, _ = strconv.Atoi(m[1])
			name = strings.TrimSuffix(name, m[0])
		}
		b := r.byName[name]
		if b == nil {
			b = &benchmark{name: name, procs: procs, samples: map[string][]float64{}}
			r.byName[name] = b
			r.order = append(r.order, name)
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return nil, fmt.Errorf("bad value %q in %q", f[i], line)
			}
			unit := f[i+1]
			if _, ok := b.samples[unit]; !ok {
				b.units = append(b.units, unit)
			}
			b.samples[unit] = append(b.samples[unit], v)
		}
	}
	return r, sc.Err()
}

func median(s []float64) float64 {
	c := append([]float64(nil), s...)
	sort.Float64s(c)
	n := len(c)
	if n%2 == 1 {
		return c[n/2]
	}
	return (c[n/2-1] + c[n/2]) / 2
}

// The echo table.

const (
	echoPrefix = "BenchmarkEcho/"
	floorKept  = "floor-kept"
	floorDial  = "floor-dial"
)

// systemOrder is the order of the echo table; systems not listed follow,
// in the order they ran.
var systemOrder = []string{floorKept, floorDial, callSystem, beforeSystem, seedOneShot, seedServer, "netrpc-gob", "netrpc-json", "grpc", "ttrpc", "varlink"}

// echoRow is one system of BenchmarkEcho, from medians. Missing figures
// are NaN.
type echoRow struct {
	system string

	seqNs, seqBytes, seqAllocs float64
	// seq latency divided by the floors' (higher is slower)
	seqVsKept, seqVsDial float64

	parOps, parBytes, parAllocs float64
	// par64 throughput divided by the floors' (lower is slower)
	parVsKept, parVsDial float64
}

// echoRows builds the echo table from r, in systemOrder.
func echoRows(r *results) []echoRow {
	var systems []string
	seen := map[string]bool{}
	for _, name := range r.order {
		sys, mode, ok := splitEcho(name)
		if !ok || (mode != "seq" && mode != "par64") || seen[sys] {
			continue
		}
		seen[sys] = true
		systems = append(systems, sys)
	}
	rank := func(s string) int {
		for i, o := range systemOrder {
			if o == s {
				return i
			}
		}
		return len(systemOrder)
	}
	sort.SliceStable(systems, func(i, j int) bool { return rank(systems[i]) < rank(systems[j]) })

	nan := math.NaN()
	get := func(sys, mode, unit string) float64 {
		b := r.get(echoPrefix + sys + "/" + mode)
		if b == nil {
			return nan
		}
		v, _ := b.median(unit)
		return v
	}
	opsPerSec := func(sys string) float64 {
		if v := get(sys, "par64", "ops/s"); !math.IsNaN(v) {
			return v
		}
		return 1e9 / get(sys, "par64", "ns/op")
	}
	keptSeq, dialSeq := get(floorKept, "seq", "ns/op"), get(floorDial, "seq", "ns/op")
	keptPar, dialPar := opsPerSec(floorKept), opsPerSec(floorDial)

	rows := make([]echoRow, 0, len(systems))
	for _, sys := range systems {
		row := echoRow{
			system:    sys,
			seqNs:     get(sys, "seq", "ns/op"),
			seqBytes:  get(sys, "seq", "B/op"),
			seqAllocs: get(sys, "seq", "allocs/op"),
			parOps:    opsPerSec(sys),
			parBytes:  get(sys, "par64", "B/op"),
			parAllocs: get(sys, "par64", "allocs/op"),
		}
		row.seqVsKept = row.seqNs / keptSeq
		row.seqVsDial = row.seqNs / dialSeq
		row.parVsKept = row.parOps / keptPar
		row.parVsDial = row.parOps / dialPar
		rows = append(rows, row)
	}
	return rows
}

// splitEcho splits "BenchmarkEcho/<system>/<mode>".
func splitEcho(name string) (system, mode string, ok bool) {
	rest, ok := strings.CutPrefix(name, echoPrefix)
	if !ok {
		return "", "", false
	}
	i := strings.LastIndexByte(rest, '/')
	if i <= 0 {
		return "", "", false
	}
	return rest[:i], rest[i+1:], true
}

// otherBenchmarks lists the benchmarks that are not in the echo table, in
// the order they ran.
func otherBenchmarks(r *results) []*benchmark {
	var out []*benchmark
	for _, name := range r.order {
		if _, mode, ok := splitEcho(name); ok && (mode == "seq" || mode == "par64") {
			continue
		}
		out = append(out, r.byName[name])
	}
	return out
}
