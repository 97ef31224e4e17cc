module github.com/acommgo/acomm

go 1.23

require (
	github.com/pborman/uuid v1.2.1
	github.com/sirupsen/logrus v1.10.2
)

require (
	github.com/google/uuid v1.0.0 // indirect
	golang.org/x/sys v0.13.0 // indirect
)
