module github.com/acommgo/acomm/bench

go 1.26.0

// acomm itself comes from the enclosing repository (the replace below),
// so the benchmarks always measure the working tree's acomm.
require github.com/acommgo/acomm v0.0.0-00010101000000-000000000000

replace github.com/acommgo/acomm => ..

require (
	github.com/containerd/ttrpc v1.2.10
	github.com/varlink/go v0.4.1-0.20261015173642-c935be0c53f7
	google.golang.org/grpc v1.85.0
	google.golang.org/protobuf v1.36.12
)

require (
	github.com/containerd/log v0.1.0 // indirect
	github.com/go-json-experiment/json v1.27.2 // indirect
	github.com/google/uuid v1.6.0 // indirect
	github.com/pborman/uuid v1.2.1 // indirect
	github.com/sirupsen/logrus v1.10.2 // indirect
	golang.org/x/net v0.60.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
	golang.org/x/text v0.42.0 // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20260817212433-ac3dfec99bb1 // indirect
)
