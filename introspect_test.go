package acomm_test

import (
	"context"
	"encoding/json"
	"io"
	"testing"
	"time"

	"github.com/acommgo/acomm"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// callInfo asks srv for its ServiceInfo over the wire.
func callInfo(t *testing.T, tr *acomm.Tracker, srv *acomm.Server) (acomm.ServiceInfo, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var info acomm.ServiceInfo
	resp, err := tr.Call(ctx, srv.URL(), acomm.InfoTask, nil)
	if err != nil {
		return info, err
	}
	require.NoError(t, resp.UnmarshalResult(&info))
	return info, nil
}

func TestIntrospection(t *testing.T) {
	tr := newTracker(t, nil, 5*time.Second)
	srv := srvStart(t, tr)
	srv.Handle("text.upper", srvEcho)
	srv.Handle("text.plain", srvEcho)
	require.NoError(t, srv.Describe("text.upper", "upper-case a string", "hello"))

	t.Run("info lists tasks with descriptions and examples", func(t *testing.T) {
		info, err := callInfo(t, tr, srv)
		require.NoError(t, err)
		assert.NotEmpty(t, info.Version)
		assert.Equal(t, acomm.Version(), info.Version)
		var names []string
		for _, ti := range info.Tasks {
			names = append(names, ti.Task)
		}
		assert.Equal(t, []string{acomm.InfoTask, acomm.PingTask, "text.plain", "text.upper"}, names, "sorted, reserved included")
		upper := info.Tasks[3]
		assert.Equal(t, "upper-case a string", upper.Description)
		assert.JSONEq(t, `"hello"`, string(upper.Example))
		assert.Empty(t, info.Tasks[2].Description)
		assert.Nil(t, info.Tasks[2].Example)
		assert.NotEmpty(t, info.Tasks[0].Description)
	})
	t.Run("info on the wire omits empty fields", func(t *testing.T) {
		b, err := json.Marshal(acomm.TaskInfo{Task: "x"})
		require.NoError(t, err)
		assert.JSONEq(t, `{"task":"x"}`, string(b))
	})
	t.Run("ping answers pong", func(t *testing.T) {
		resp, err := tr.Call(context.Background(), srv.URL(), acomm.PingTask, nil)
		require.NoError(t, err)
		var s string
		require.NoError(t, resp.UnmarshalResult(&s))
		assert.Equal(t, "pong", s)
	})
	t.Run("a registered handler takes a reserved task's place", func(t *testing.T) {
		srv.Handle(acomm.PingTask, func(context.Context, *acomm.Request) (interface{}, io.ReadCloser, error) {
			return "mine", nil, nil
		})
		resp, err := tr.Call(context.Background(), srv.URL(), acomm.PingTask, nil)
		require.NoError(t, err)
		var s string
		require.NoError(t, resp.UnmarshalResult(&s))
		assert.Equal(t, "mine", s)
		info, err := callInfo(t, tr, srv)
		require.NoError(t, err)
		assert.Len(t, info.Tasks, 4, "listed once")
	})
}

func TestWithoutIntrospection(t *testing.T) {
	tr := newTracker(t, nil, 5*time.Second)
	srv := srvStart(t, tr, acomm.WithoutIntrospection())
	srv.Handle("work", srvEcho)
	for _, task := range []string{acomm.InfoTask, acomm.PingTask} {
		t.Run(task, func(t *testing.T) {
			_, err := tr.Call(context.Background(), srv.URL(), task, nil)
			require.ErrorIs(t, err, acomm.ErrUnknownTask)
		})
	}
	info := srv.Info()
	require.Len(t, info.Tasks, 1)
	assert.Equal(t, "work", info.Tasks[0].Task)
}

func TestDescribeRefusesBadInput(t *testing.T) {
	srv := acomm.NewServer(sockPath(t, "s.sock"), nil)
	tests := []struct {
		name, task, desc string
		example          interface{}
	}{
		{"empty task", "", "x", nil},
		{"two lines", "t", "one\ntwo", nil},
		{"example not marshallable", "t", "x", make(chan int)},
		{"example bad raw json", "t", "x", json.RawMessage(`{`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.ErrorIs(t, srv.Describe(tt.task, tt.desc, tt.example), acomm.ErrInvalidArgument)
		})
	}
	require.NoError(t, srv.Describe("later", "described before its handler", nil))
	assert.Len(t, srv.Info().Tasks, 2, "a described task without handler is not listed")
}
