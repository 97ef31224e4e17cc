// Command report turns the raw output of the bench suite (go test -bench,
// possibly several runs concatenated) into BENCHMARKS.md and an SVG chart.
//
// For each benchmark it takes the median of every metric over the runs.
// BenchmarkEcho/<system>/{seq,par64} results become the echo table, each
// figure also given as a ratio to the floors (floor-kept, floor-dial) of
// the same run; every other benchmark goes in a second table. Issue 16's
// targets come first, each with its figures and a met/missed verdict.
//
//	go run ./cmd/report -in results/latest.txt -benchstat results/benchstat.txt \
//		-out ../BENCHMARKS.md -svg results/chart.svg
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

func main() {
	in := flag.String("in", "results/latest.txt", "raw go test -bench output")
	benchstatFile := flag.String("benchstat", "", "benchstat output to include (optional)")
	out := flag.String("out", "../BENCHMARKS.md", "markdown file to write")
	svg := flag.String("svg", "results/chart.svg", "SVG chart to write")
	goVersion := flag.String("goversion", runtime.Version(), "Go version to report")
	settings := flag.String("settings", "", "how the run was made, shown in the report")
	load := flag.String("load", "", "load averages around the run, shown in the report")
	date := flag.String("date", time.Now().UTC().Format("2006-01-02 15:04 MST"), "when the run began, shown in the report")
	flag.Parse()
	if err := run(*in, *benchstatFile, *out, *svg, *goVersion, *settings, *load, *date); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
}

func run(in, benchstatFile, out, svg, goVersion, settings, load, date string) error {
	f, err := os.Open(in)
	if err != nil {
		return err
	}
	defer f.Close()
	r, err := parse(f)
	if err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	if len(r.order) == 0 {
		return fmt.Errorf("%s: no benchmark results", in)
	}
	var stat string
	if benchstatFile != "" {
		b, err := os.ReadFile(benchstatFile)
		if err != nil && !os.IsNotExist(err) {
			return err
		}
		stat = string(b)
	}
	m := machine{
		cpuModel:  cpuModel("/proc/cpuinfo", r.config["cpu"]),
		cpus:      runtime.NumCPU(),
		goVersion: goVersion,
		date:      date,
		settings:  settings,
		load:      load,
	}
	chartRef := svg
	absOut, err1 := filepath.Abs(out)
	absSVG, err2 := filepath.Abs(svg)
	if err1 == nil && err2 == nil {
		if rel, err := filepath.Rel(filepath.Dir(absOut), absSVG); err == nil {
			chartRef = rel
		}
	}
	if err := os.WriteFile(svg, []byte(renderSVG(echoRows(r), targets(r))), 0o644); err != nil {
		return err
	}
	return os.WriteFile(out, []byte(renderMarkdown(r, m, filepath.ToSlash(chartRef), stat)), 0o644)
}

// cpuModel returns the first "model name" of a /proc/cpuinfo file, else
// fallback, else "unknown".
func cpuModel(path, fallback string) string {
	if f, err := os.Open(path); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			k, v, ok := strings.Cut(sc.Text(), ":")
			if ok && strings.TrimSpace(k) == "model name" {
				return strings.TrimSpace(v)
			}
		}
	}
	if fallback != "" {
		return fallback
	}
	return "unknown"
}
