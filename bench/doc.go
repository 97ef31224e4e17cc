// Package bench holds the side-by-side benchmarks that put acomm next to
// the floor (raw length-prefixed frames on a unix socket) and next to the
// usual alternatives (net/rpc, gRPC, ttrpc, varlink), all on unix sockets
// on this machine.
//
// Everything lives in _test.go files; this file exists only to carry the
// package comment. Run the whole suite with ./run (see that script), or a
// part of it with, for example:
//
//	go test -run '^$' -bench 'Echo/grpc' -benchtime 2000x
//	go test -run '^$' -bench 'Stream' -benchtime 1x
//	go test -run '^$' -bench 'Stage' -benchtime 20000x   # each stage of a request
//
// cmd/report turns the raw output into BENCHMARKS.md at the repository
// root.
package bench
