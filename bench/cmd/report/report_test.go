package main

import (
	"encoding/xml"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sample is go test -bench output of three runs (two of them in one go
// test invocation, one in another, as ./run concatenates them), with a
// log line and the noise go test prints around results, then the old
// code's acomm-call renamed as ./run renames it.
const sample = `goos: linux
goarch: amd64
pkg: github.com/acommgo/acomm/bench
cpu: AMD EPYC
BenchmarkEcho/floor-kept/seq-2     	    2000	     10000 ns/op	       0 B/op	       0 allocs/op
BenchmarkEcho/floor-kept/par64-2   	    2000	      5000 ns/op	    200000 ops/s	      40 B/op	       0 allocs/op
BenchmarkEcho/floor-dial/seq-2     	    2000	     60000 ns/op	    8000 B/op	      28 allocs/op
BenchmarkEcho/floor-dial/par64-2   	    2000	     50000 ns/op	     20000 ops/s	    8100 B/op	      28 allocs/op
BenchmarkEcho/grpc/seq-2           	    2000	     50000 ns/op	    9000 B/op	     140 allocs/op
BenchmarkEcho/grpc/par64-2         	    2000	     25000 ns/op	     40000 ops/s	    9300 B/op	     135 allocs/op
BenchmarkEcho/my|sys/seq-2         	    2000	     20000 ns/op	    1000 B/op	      20 allocs/op
BenchmarkEcho/acomm-call/seq-2             	    2000	     15000 ns/op	    1200 B/op	      26 allocs/op
BenchmarkEcho/acomm-call/par64-2           	    2000	      4167 ns/op	    240000 ops/s	    1250 B/op	      26 allocs/op
BenchmarkEcho/acomm-seed-oneshot/seq-2     	    2000	     70000 ns/op	    4500 B/op	      66 allocs/op
BenchmarkEcho/acomm-seed-oneshot/par64-2   	    2000	     30000 ns/op	     33333 ops/s	    5300 B/op	      71 allocs/op
BenchmarkEcho/acomm-seed-server/seq-2      	    2000	     21000 ns/op	    1400 B/op	      28 allocs/op
BenchmarkEcho/acomm-seed-server/par64-2    	    2000	     14000 ns/op	     71428 ops/s	    1900 B/op	      30 allocs/op
BenchmarkEcho/varlink/seq-2                	    2000	     16000 ns/op	    5800 B/op	      61 allocs/op
BenchmarkEcho/varlink/par64-2              	    2000	     11111 ns/op	     90000 ops/s	    5800 B/op	      61 allocs/op
BenchmarkEcho/netrpc-gob/seq-2             	    2000	     12000 ns/op	    1100 B/op	      23 allocs/op
BenchmarkEcho/netrpc-gob/par64-2           	    2000	      5000 ns/op	    200000 ops/s	    1100 B/op	      23 allocs/op
BenchmarkEcho/netrpc-json/seq-2            	    2000	     17000 ns/op	    1400 B/op	      29 allocs/op
BenchmarkEcho/netrpc-json/par64-2          	    2000	      8000 ns/op	    125000 ops/s	    1400 B/op	      29 allocs/op
BenchmarkEcho/floor-kept/seq-2     	    2000	     12000 ns/op	       0 B/op	       0 allocs/op
BenchmarkEcho/floor-kept/par64-2   	    2000	      4000 ns/op	    250000 ops/s	      30 B/op	       0 allocs/op
BenchmarkEcho/floor-dial/seq-2     	    2000	     64000 ns/op	    8000 B/op	      28 allocs/op
BenchmarkEcho/floor-dial/par64-2   	    2000	     40000 ns/op	     25000 ops/s	    8100 B/op	      28 allocs/op
BenchmarkEcho/grpc/seq-2           	    2000	     48000 ns/op	    9000 B/op	     140 allocs/op
BenchmarkEcho/grpc/par64-2         	    2000	     20000 ns/op	     50000 ops/s	    9300 B/op	     136 allocs/op
    helpers_test.go:42: some log line: with colons
BenchmarkEcho/floor-kept/seq-2     	    2000	     11000 ns/op	       0 B/op	       0 allocs/op
BenchmarkEcho/floor-kept/par64-2   	    2000	      4500 ns/op	    222222 ops/s	      35 B/op	       0 allocs/op
BenchmarkEcho/floor-dial/seq-2     	    2000	     62000 ns/op	    8000 B/op	      28 allocs/op
BenchmarkEcho/floor-dial/par64-2   	    2000	     45000 ns/op	     22222 ops/s	    8100 B/op	      28 allocs/op
BenchmarkEcho/grpc/seq-2           	    2000	     55000 ns/op	    9000 B/op	     140 allocs/op
BenchmarkEcho/grpc/par64-2         	    2000	     30000 ns/op	     44444 ops/s	    9300 B/op	     137 allocs/op
PASS
ok  	github.com/acommgo/acomm/bench	12.345s
goos: linux
goarch: amd64
pkg: github.com/acommgo/acomm/bench
cpu: AMD EPYC
BenchmarkMultiRequestFanout10/server-send-all-2     	     200	     90000 ns/op	   17000 B/op	     290 allocs/op
BenchmarkMultiRequestFanout10/oneshot-send-all-2    	     200	    300000 ns/op	   47000 B/op	     650 allocs/op
BenchmarkMultiRequestFanout10/oneshot-send-each-2   	     200	    400000 ns/op	   47000 B/op	     660 allocs/op
BenchmarkMultiRequestFanout10/floor-dial-10-2       	     200	    250000 ns/op	   80000 B/op	     300 allocs/op
PASS
ok  	github.com/acommgo/acomm/bench	1.000s
goos: linux
goarch: amd64
pkg: github.com/acommgo/acomm/bench
cpu: AMD EPYC
BenchmarkEcho/acomm-call-9214427/seq-2     	    2000	     16000 ns/op	    1333 B/op	      26 allocs/op
BenchmarkEcho/acomm-call-9214427/par64-2   	    2000	      8000 ns/op	    125000 ops/s	    6982 B/op	      51 allocs/op
PASS
ok  	github.com/acommgo/acomm/bench	0.500s
goos: linux
goarch: amd64
pkg: github.com/acommgo/acomm/bench
cpu: AMD EPYC
BenchmarkStream/raw-unix-2         	       3	 140000000 ns/op	7669.55 MB/s	     100 B/op	       5 allocs/op
BenchmarkStream/raw-unix-2         	       3	 130000000 ns/op	8259.51 MB/s	      98 B/op	       5 allocs/op
BenchmarkStream/raw-unix-2         	       3	 150000000 ns/op	7158.28 MB/s	      96 B/op	       5 allocs/op
BenchmarkOther                     	     100	      1234 ns/op
PASS
ok  	github.com/acommgo/acomm/bench	2.000s
`

func mustParse(t *testing.T) *results {
	t.Helper()
	r, err := parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

func TestParse(t *testing.T) {
	r := mustParse(t)
	wantOrder := []string{
		"BenchmarkEcho/floor-kept/seq", "BenchmarkEcho/floor-kept/par64",
		"BenchmarkEcho/floor-dial/seq", "BenchmarkEcho/floor-dial/par64",
		"BenchmarkEcho/grpc/seq", "BenchmarkEcho/grpc/par64",
		"BenchmarkEcho/my|sys/seq",
		"BenchmarkEcho/acomm-call/seq", "BenchmarkEcho/acomm-call/par64",
		"BenchmarkEcho/acomm-seed-oneshot/seq", "BenchmarkEcho/acomm-seed-oneshot/par64",
		"BenchmarkEcho/acomm-seed-server/seq", "BenchmarkEcho/acomm-seed-server/par64",
		"BenchmarkEcho/varlink/seq", "BenchmarkEcho/varlink/par64",
		"BenchmarkEcho/netrpc-gob/seq", "BenchmarkEcho/netrpc-gob/par64",
		"BenchmarkEcho/netrpc-json/seq", "BenchmarkEcho/netrpc-json/par64",
		"BenchmarkMultiRequestFanout10/server-send-all", "BenchmarkMultiRequestFanout10/oneshot-send-all",
		"BenchmarkMultiRequestFanout10/oneshot-send-each", "BenchmarkMultiRequestFanout10/floor-dial-10",
		"BenchmarkEcho/acomm-call-9214427/seq", "BenchmarkEcho/acomm-call-9214427/par64",
		"BenchmarkStream/raw-unix", "BenchmarkOther",
	}
	if strings.Join(r.order, " ") != strings.Join(wantOrder, " ") {
		t.Fatalf("order = %q, want %q", r.order, wantOrder)
	}
	if r.config["cpu"] != "AMD EPYC" || r.config["goos"] != "linux" {
		t.Errorf("config = %v", r.config)
	}
	kept := r.get("BenchmarkEcho/floor-kept/seq")
	if kept.procs != 2 || kept.runs() != 3 {
		t.Errorf("floor-kept/seq: procs %d runs %d, want 2 and 3", kept.procs, kept.runs())
	}
	for _, c := range []struct {
		name, unit string
		want       float64
	}{
		{"BenchmarkEcho/floor-kept/seq", "ns/op", 11000},
		{"BenchmarkEcho/floor-kept/par64", "ops/s", 222222},
		{"BenchmarkEcho/grpc/par64", "allocs/op", 136},
		{"BenchmarkStream/raw-unix", "MB/s", 7669.55},
		{"BenchmarkStream/raw-unix", "B/op", 98},
		{"BenchmarkOther", "ns/op", 1234},
		{"BenchmarkEcho/varlink/par64", "ops/s", 90000},
		{"BenchmarkMultiRequestFanout10/oneshot-send-each", "allocs/op", 660},
	} {
		got, ok := r.get(c.name).median(c.unit)
		if !ok || !near(got, c.want) {
			t.Errorf("median %s %s = %v (%v), want %v", c.name, c.unit, got, ok, c.want)
		}
	}
	if _, ok := r.get("BenchmarkOther").median("B/op"); ok {
		t.Error("BenchmarkOther has no B/op, but median found one")
	}
	stream := r.get("BenchmarkStream/raw-unix")
	if strings.Join(stream.units, ",") != "ns/op,MB/s,B/op,allocs/op" {
		t.Errorf("stream units = %v", stream.units)
	}
}

func TestMedianEven(t *testing.T) {
	if got := median([]float64{4, 1, 3, 2}); got != 2.5 {
		t.Fatalf("median = %v, want 2.5", got)
	}
}

func TestParseNoProcsSuffix(t *testing.T) {
	r, err := parse(strings.NewReader("BenchmarkEcho/floor-kept/par64 \t 10 \t 100 ns/op\n"))
	if err != nil {
		t.Fatal(err)
	}
	if b := r.get("BenchmarkEcho/floor-kept/par64"); b == nil || b.procs != 1 {
		t.Fatalf("got %+v", r.order)
	}
}

func TestEchoRows(t *testing.T) {
	rows := echoRows(mustParse(t))
	var names []string
	for _, row := range rows {
		names = append(names, row.system)
	}
	want := "floor-kept,floor-dial,acomm-call,acomm-call-9214427,acomm-seed-oneshot,acomm-seed-server,netrpc-gob,netrpc-json,grpc,varlink,my|sys"
	if got := strings.Join(names, ","); got != want {
		t.Fatalf("systems = %s, want %s", got, want)
	}
	kept, dial, grpc, mine := rows[0], rows[1], rows[8], rows[10]
	if !near(kept.seqVsKept, 1) || !near(kept.parVsKept, 1) || !near(dial.seqVsDial, 1) {
		t.Errorf("floors are not 1× themselves: %+v %+v", kept, dial)
	}
	// grpc seq median 50000 ns; floors 11000 and 62000.
	if !near(grpc.seqNs, 50000) || !near(grpc.seqVsKept, 50000.0/11000) || !near(grpc.seqVsDial, 50000.0/62000) {
		t.Errorf("grpc seq = %v, %v, %v", grpc.seqNs, grpc.seqVsKept, grpc.seqVsDial)
	}
	// grpc par64 median 44444 ops/s; floors 222222 and 22222.
	if !near(grpc.parOps, 44444) || !near(grpc.parVsKept, 44444.0/222222) || !near(grpc.parVsDial, 44444.0/22222) {
		t.Errorf("grpc par64 = %v, %v, %v", grpc.parOps, grpc.parVsKept, grpc.parVsDial)
	}
	if !near(grpc.parAllocs, 136) || !near(grpc.seqBytes, 9000) {
		t.Errorf("grpc allocs = %v, B/op = %v", grpc.parAllocs, grpc.seqBytes)
	}
	if !math.IsNaN(mine.parOps) || !math.IsNaN(mine.parVsKept) || !near(mine.seqNs, 20000) {
		t.Errorf("system with only seq: %+v", mine)
	}
}

func TestRenderMarkdown(t *testing.T) {
	r := mustParse(t)
	m := machine{cpuModel: "Test CPU", cpus: 2, goVersion: "go1.99", date: "2000-01-01 00:00 UTC", settings: "COUNT=3"}
	md := renderMarkdown(r, m, "bench/results/chart.svg", "goos: linux\nsec/op summary\n")
	for _, want := range []string{
		"| CPU | Test CPU |",
		"| CPUs (nproc) | 2 |",
		"| Go | go1.99 |",
		"| Runs per benchmark | 1 to 3 (figures are medians) |",
		"![seq latency and par64 throughput per system](bench/results/chart.svg)",
		"| floor-kept | 11.00 | 1.00× | 0.18× | 222,222 | 1.00× | 10.00× | 0 | 0 | 35 | 0 |",
		"| grpc | 50.00 | 4.55× | 0.81× | 44,444 | 0.20× | 2.00× | 9,000 | 140 | 9,300 | 136 |",
		`| my\|sys | 20.00 | 1.82× | 0.32× | – | – | – | 1,000 | 20 | – | – |`,
		"| BenchmarkStream/raw-unix | 3 | 140,000,000 | 98 | 5 | 7,670 MB/s |",
		"| BenchmarkOther | 1 | 1,234 | – | – |  |",
		"| BenchmarkMultiRequestFanout10/server-send-all | 1 | 90,000 | 17,000 | 290 |  |",
		"| varlink | 16.00 | 1.45× | 0.26× | 90,000 | 0.41× | 4.05× | 5,800 | 61 | 5,800 | 61 |",
		"| acomm-seed-oneshot | 70.00 | 6.36× | 1.13× | 33,333 | 0.15× | 1.50× | 4,500 | 66 | 5,300 | 71 |",
		"| acomm-call-9214427 | 16.00 | 1.45× | 0.26× | 125,000 | 0.56× | 5.63× | 1,333 | 26 | 6,982 | 51 |",
		"| BenchmarkMultiRequestFanout10/floor-dial-10 | 1 | 250,000 | 80,000 | 300 |  |",
		"## Issue 16 targets",
		"**7 of 9 met**.",
		"| Call sequential faster than the JSON peers (netrpc-json, varlink) | 15.00 µs; netrpc-json 17.00 µs (Call 0.88× it), varlink 16.00 µs (Call 0.94× it) | < each | **met** |",
		"| Call sequential ≤ 1.3× netrpc-gob | 15.00 µs = 1.25× netrpc-gob (12.00 µs) | ≤ 1.30× | **met** |",
		"| Call sequential not slower than the code before the rewrite (acomm-call-9214427, built in the same run) | 15.00 µs = 0.94× acomm-call-9214427 (16.00 µs) | ≤ 1.00× | **met** |",
		"| Call 64 in flight ahead of every peer | 240,000 ops/s; best peer netrpc-gob 200,000 ops/s (Call 1.20× it) | > best peer | **met** |",
		"| Seed cycle, Server (acomm-seed-server seq) ≤ 3.5× floor-kept (two exchanges: 2× is the floor) | 21.00 µs = 1.91× floor-kept (11.00 µs) | ≤ 3.50× | **met** |",
		"| Seed cycle, one-frame-per-connection service (acomm-seed-oneshot seq) ≤ 1.2× (floor-dial + floor-kept) | 70.00 µs = 0.96× floor-dial + floor-kept (73.00 µs) | ≤ 1.20× | **met** |",
		"| MultiRequest fan-out to 10 Servers, SendAll (server-send-all) ≤ 60 µs | 90.00 µs | ≤ 60.00 µs | **missed** |",
		"| MultiRequest fan-out to 10 one-frame-per-connection services, SendAll (oneshot-send-all) ≤ 1.3× ten concurrent floor-dials (floor-dial-10) | 300.00 µs = 1.20× floor-dial-10 (250.00 µs) | ≤ 1.30× | **met** |",
		"| Allocations per Call, client and server (acomm-call seq allocs/op) ≤ 20 | 26 | ≤ 20 | **missed** |",
		"| raw-unix | 7,670 | 1.00× | – |",
		"```\ngoos: linux\nsec/op summary\n```",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "BenchmarkEcho/grpc") {
		t.Error("echo benchmarks also listed among the others")
	}
}

func TestRenderSVG(t *testing.T) {
	r := mustParse(t)
	svg := renderSVG(echoRows(r), targets(r))
	checkXML(t, svg)
	for _, want := range []string{">floor-kept<", ">grpc<", ">my|sys<", "50.00 µs (4.55×)", "44,444 ops/s (0.20×)",
		"met: Call seq 0.88× netrpc-json, 0.94× varlink (&lt; 1.00× each)", "met: Call seq 1.25× netrpc-gob (≤ 1.30×)",
		"met: Call par64 1.20× best peer (&gt; 1.00×)", "met: Seed cycle, one-shot service 0.96× floor-dial + floor-kept (≤ 1.20×)",
		"missed: Fan-out server-send-all 90.00 µs (≤ 60.00 µs)", "met: Fan-out oneshot-send-all 1.20× floor-dial-10 (≤ 1.30×)",
		"missed: Allocs per Call 26 (≤ 20)", "Issue 16 targets"} {
		if !strings.Contains(svg, want) {
			t.Errorf("svg lacks %q", want)
		}
	}
	checkXML(t, renderSVG(nil, nil))
}

func checkXML(t *testing.T, s string) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(s))
	for {
		_, err := d.Token()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatalf("bad XML: %v\n%s", err, s)
		}
	}
}

func TestRunWritesFiles(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "latest.txt")
	if err := os.WriteFile(in, []byte(sample), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "BENCHMARKS.md")
	svg := filepath.Join(dir, "bench", "results", "chart.svg")
	if err := os.MkdirAll(filepath.Dir(svg), 0o755); err != nil {
		t.Fatal(err)
	}
	// Relative paths, as ./run gives them: from bench/ to the repository
	// root.
	t.Chdir(filepath.Join(dir, "bench"))
	if err := run("../latest.txt", "../missing.txt", "../BENCHMARKS.md", "results/chart.svg", "go1.99", "", "0.1 0.2 0.3 before, 1.0 0.5 0.4 after", "2000-01-01 00:00 UTC"); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(md), "](bench/results/chart.svg)") || !strings.Contains(string(md), "benchstat was not available") ||
		!strings.Contains(string(md), "| Load average (1, 5, 15 min) | 0.1 0.2 0.3 before, 1.0 0.5 0.4 after |") ||
		!strings.Contains(string(md), "| Date | 2000-01-01 00:00 UTC |") {
		t.Errorf("unexpected markdown:\n%s", md)
	}
	if _, err := os.Stat(svg); err != nil {
		t.Error(err)
	}
	if err := run(filepath.Join(dir, "missing.txt"), "", out, svg, "", "", "", ""); err == nil {
		t.Error("run with a missing input succeeded")
	}
}

func TestCPUModel(t *testing.T) {
	p := filepath.Join(t.TempDir(), "cpuinfo")
	os.WriteFile(p, []byte("processor\t: 0\nvendor_id\t: X\nmodel name\t: Some CPU @ 2GHz\n"), 0o644)
	if got := cpuModel(p, "fb"); got != "Some CPU @ 2GHz" {
		t.Errorf("cpuModel = %q", got)
	}
	if got := cpuModel(filepath.Join(t.TempDir(), "none"), "fb"); got != "fb" {
		t.Errorf("cpuModel fallback = %q", got)
	}
}

func TestStreamRatios(t *testing.T) {
	r, err := parse(strings.NewReader(`BenchmarkStream/raw-unix-2 	3	 100 ns/op	8000.00 MB/s
BenchmarkStream/raw-tcp-2 	3	 200 ns/op	4000.00 MB/s
BenchmarkStream/acomm-http-proxy-2 	3	 200 ns/op	5000.00 MB/s
`))
	if err != nil {
		t.Fatal(err)
	}
	got := streamRatios(r)
	for _, want := range []string{"| raw-tcp | 4,000 | 0.50× | 1.00× |", "| acomm-http-proxy | 5,000 | 0.62× | 1.25× |"} {
		if !strings.Contains(got, want) {
			t.Errorf("ratios lack %q:\n%s", want, got)
		}
	}
	if streamRatios(&results{byName: map[string]*benchmark{}}) != "" {
		t.Error("ratios without raw-unix")
	}
}

func TestTargetsWithoutData(t *testing.T) {
	r, err := parse(strings.NewReader("BenchmarkEcho/floor-kept/seq-2 \t 10 \t 100 ns/op\n"))
	if err != nil {
		t.Fatal(err)
	}
	ts := targets(r)
	if len(ts) != 9 {
		t.Fatalf("%d targets, want 9", len(ts))
	}
	for _, tg := range ts {
		if tg.verdict != noData {
			t.Errorf("%s: %v without data", tg.name, tg.verdict)
		}
	}
	if md := targetsMarkdown(ts); !strings.Contains(md, "**0 of 9 met** (9 without data in this run).") {
		t.Errorf("markdown:\n%s", md)
	}
}

func TestJudge(t *testing.T) {
	for _, c := range []struct {
		ok   bool
		vs   []float64
		want verdict
	}{
		{true, []float64{1}, met},
		{false, []float64{1}, missed},
		{true, []float64{1, math.NaN()}, noData},
		{false, []float64{math.Inf(1)}, noData},
		{true, nil, met},
	} {
		if got := judge(c.ok, c.vs...); got != c.want {
			t.Errorf("judge(%v, %v) = %v, want %v", c.ok, c.vs, got, c.want)
		}
	}
}

// TestTargetsWithoutBefore: a run without the code before the rewrite (a
// shallow clone) has no data for that target only.
func TestTargetsWithoutBefore(t *testing.T) {
	var kept []string
	for _, line := range strings.Split(sample, "\n") {
		if !strings.Contains(line, beforeSystem) {
			kept = append(kept, line)
		}
	}
	r, err := parse(strings.NewReader(strings.Join(kept, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	for _, tg := range targets(r) {
		if got, want := tg.verdict == noData, strings.Contains(tg.name, beforeSystem); got != want {
			t.Errorf("%s: %v", tg.name, tg.verdict)
		}
	}
}

// TestTargetsPastFloor: a fan-out target that its own floor, measured in
// the same run, misses too is "missed: past its floor", with the floor's
// figures; a floor that meets it leaves a plain miss.
func TestTargetsPastFloor(t *testing.T) {
	for _, c := range []struct {
		name          string
		floors        string
		server, oneSh verdict
		wantInText    []string
	}{
		{"floors past the targets", `
BenchmarkMultiRequestFanout10/floor-kept-10-2       	     200	     70000 ns/op	   600 B/op	     11 allocs/op
BenchmarkMultiRequestFanout10/floor-dial-kept-10-2  	     200	    340000 ns/op	   80000 B/op	     300 allocs/op
`, pastFloor, met, []string{"90.00 µs = 1.29× its floor, floor-kept-10", "floor-dial-kept-10 (", "340.00 µs = 1.36× floor-dial-10, and oneshot-send-all = 0.88× it"}},
		{"one-shot fan-out past its floor", `
BenchmarkMultiRequestFanout10/oneshot-send-all-2    	     200	    360000 ns/op	   47000 B/op	     650 allocs/op
BenchmarkMultiRequestFanout10/floor-dial-kept-10-2  	     200	    340000 ns/op	   80000 B/op	     300 allocs/op
`, missed, pastFloor, []string{"330.00 µs = 1.32× floor-dial-10", "= 0.97× it"}},
		{"the lower of the Server fan-out's two floors", `
BenchmarkMultiRequestFanout10/floor-kept-10-2       	     200	     80000 ns/op	   600 B/op	     11 allocs/op
BenchmarkMultiRequestFanout10/floor-pipelined-10-2  	     200	     70000 ns/op	     0 B/op	      0 allocs/op
`, pastFloor, met, []string{"90.00 µs = 1.29× its floor, floor-pipelined-10 (ten floor-kept frames written"}},
		{"a pipelined floor within the target", `
BenchmarkMultiRequestFanout10/floor-kept-10-2       	     200	     80000 ns/op	   600 B/op	     11 allocs/op
BenchmarkMultiRequestFanout10/floor-pipelined-10-2  	     200	     50000 ns/op	     0 B/op	      0 allocs/op
`, missed, met, nil},
		{"floors within the targets", `
BenchmarkMultiRequestFanout10/floor-kept-10-2       	     200	     50000 ns/op	   600 B/op	     11 allocs/op
BenchmarkMultiRequestFanout10/floor-dial-kept-10-2  	     200	    260000 ns/op	   80000 B/op	     300 allocs/op
`, missed, met, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, err := parse(strings.NewReader(sample + c.floors))
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]verdict{}
			var all []string
			for _, tg := range targets(r) {
				all = append(all, tg.measured)
				switch {
				case strings.Contains(tg.name, "("+fanoutServer+")"):
					got[fanoutServer] = tg.verdict
				case strings.Contains(tg.name, "("+fanoutOneShot+")"):
					got[fanoutOneShot] = tg.verdict
				}
			}
			if got[fanoutServer] != c.server || got[fanoutOneShot] != c.oneSh {
				t.Errorf("verdicts %v, want %v and %v", got, c.server, c.oneSh)
			}
			text := strings.Join(all, "\n")
			for _, want := range c.wantInText {
				if !strings.Contains(text, want) {
					t.Errorf("no %q in:\n%s", want, text)
				}
			}
		})
	}
	if got := floorJudge(false, false, math.NaN(), 1); got != missed {
		t.Errorf("without a floor: %v", got)
	}
}
