package acomm

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
)

// Reserved tasks that every Server answers itself, unless configured
// WithoutIntrospection. Task names starting with "acomm." are reserved
// for the protocol. A handler registered with Handle for one of them
// takes its place.
const (
	// InfoTask asks a service what it offers. Its args are ignored; its
	// result is a ServiceInfo.
	InfoTask = "acomm.info"
	// PingTask asks a service whether it is alive. Its args are ignored;
	// its result is the string "pong".
	PingTask = "acomm.ping"
)

// modulePath is the import path of this module, to find its version in
// the build information.
const modulePath = "github.com/acommgo/acomm"

// ServiceInfo is the result of InfoTask: the library version a service
// runs and the tasks it handles, sorted by name (the reserved ones
// included).
type ServiceInfo struct {
	Version string     `json:"version"`
	Tasks   []TaskInfo `json:"tasks"`
}

// TaskInfo describes one task of a service (see Server.Describe).
type TaskInfo struct {
	Task        string          `json:"task"`
	Description string          `json:"description,omitempty"`
	Example     json.RawMessage `json:"example,omitempty"` // example args
}

// WithoutIntrospection makes a Server leave InfoTask and PingTask to the
// handlers registered for them: without one, they are answered with
// ErrUnknownTask like any other task. Use it when a service should not
// tell its callers which tasks it has.
func WithoutIntrospection() Option {
	return option("WithoutIntrospection", forServer, func(c *config) error {
		c.noIntrospection = true
		return nil
	})
}

// Version returns the version of this module that the running program
// was built with, as the go command recorded it: a tag such as "v1.2.0",
// a pseudo-version, or "(devel)" in a build of the module itself.
func Version() string { return moduleVersion() }

var moduleVersion = sync.OnceValue(func() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "(devel)"
	}
	if bi.Main.Path == modulePath && bi.Main.Version != "" {
		return bi.Main.Version
	}
	for _, d := range bi.Deps {
		if d.Path == modulePath {
			if d.Replace != nil && d.Replace.Version != "" {
				return d.Replace.Version
			}
			return d.Version
		}
	}
	return "(devel)"
})

// taskDocs holds the descriptions given to Server.Describe.
type taskDocs struct {
	mu   sync.Mutex
	docs map[string]TaskInfo
}

// Describe gives task a one-line description and an example of its args
// (marshalled to JSON; nil for none), which InfoTask reports for it while
// it has a handler. It may be called before or after Handle, and again to
// replace a description. It fails with ErrInvalidArgument for an empty
// task, a description of more than one line, or example args that cannot
// be marshalled.
func (s *Server) Describe(task, description string, exampleArgs interface{}) error {
	if task == "" {
		return fmt.Errorf("%w: empty task", ErrInvalidArgument)
	}
	if strings.ContainsAny(description, "\r\n") {
		return fmt.Errorf("%w: description of task %q is more than one line", ErrInvalidArgument, task)
	}
	raw, err := marshalRaw(exampleArgs)
	if err != nil {
		return fmt.Errorf("%w: example args of task %q: %w", ErrInvalidArgument, task, err)
	}
	info := TaskInfo{Task: task, Description: description}
	if raw != nil {
		info.Example = *raw
	}
	s.docs.mu.Lock()
	defer s.docs.mu.Unlock()
	if s.docs.docs == nil {
		s.docs.docs = make(map[string]TaskInfo)
	}
	s.docs.docs[task] = info
	return nil
}

// reservedHandler returns the server's own handler of a reserved task, or
// nil.
func (s *Server) reservedHandler(task string) TaskHandler {
	if s.cfg.noIntrospection {
		return nil
	}
	switch task {
	case InfoTask:
		return s.serveInfo
	case PingTask:
		return servePing
	}
	return nil
}

// builtinDocs describe the reserved tasks.
var builtinDocs = map[string]TaskInfo{
	InfoTask: {Task: InfoTask, Description: "what this service offers: its tasks and library version"},
	PingTask: {Task: PingTask, Description: `whether this service is alive: answers "pong"`},
}

// serveInfo answers InfoTask.
func (s *Server) serveInfo(context.Context, *Request) (interface{}, io.ReadCloser, error) {
	return s.Info(), nil, nil
}

// Info returns what InfoTask answers: the library version and every task
// the server handles, with its description, sorted by name.
func (s *Server) Info() ServiceInfo {
	handlers := *s.handlers.Load()
	s.mu.Lock()
	off := s.cfg.noIntrospection
	s.mu.Unlock()
	s.docs.mu.Lock()
	defer s.docs.mu.Unlock()
	tasks := make([]TaskInfo, 0, len(handlers)+len(builtinDocs))
	for task := range handlers {
		tasks = append(tasks, s.describeLocked(task))
	}
	if !off {
		for task := range builtinDocs {
			if _, ok := handlers[task]; !ok {
				tasks = append(tasks, s.describeLocked(task))
			}
		}
	}
	sort.Slice(tasks, func(i, j int) bool { return tasks[i].Task < tasks[j].Task })
	return ServiceInfo{Version: Version(), Tasks: tasks}
}

// describeLocked returns the description of task; s.docs.mu is held.
func (s *Server) describeLocked(task string) TaskInfo {
	if info, ok := s.docs.docs[task]; ok {
		return info
	}
	if info, ok := builtinDocs[task]; ok {
		return info
	}
	return TaskInfo{Task: task}
}

// servePing answers PingTask.
func servePing(context.Context, *Request) (interface{}, io.ReadCloser, error) {
	return "pong", nil, nil
}
