package acomm_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/acommgo/acomm"
	"github.com/stretchr/testify/require"
)

// otherUID is a uid that is neither root nor this process's user. The
// tests run as root, which may give files to it.
const otherUID = 54321

// requireRoot skips a test that needs to give files to another user.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown files to another user")
	}
}

// linkedSocket makes base/link, a symbolic link owned by uid, to the
// directory base/real, and returns a socket path through it.
func linkedSocket(t *testing.T, base string, uid int) string {
	t.Helper()
	require.NoError(t, os.Mkdir(filepath.Join(base, "real"), 0o700))
	require.NoError(t, os.Symlink("real", filepath.Join(base, "link")))
	require.NoError(t, os.Lchown(filepath.Join(base, "link"), uid, uid))
	return filepath.Join(base, "link", "s.sock")
}

// Socket directories that another user could redirect or replace are
// refused with ErrUnsafeSocketPath; directories only we (or root) control,
// and sticky world-writable ones such as /tmp, are used.
func TestSocketDirSafety(t *testing.T) {
	requireRoot(t)
	cases := []struct {
		name   string
		setup  func(t *testing.T, base string) string // returns the socket path
		unsafe bool
	}{
		{"private dir", func(t *testing.T, base string) string {
			return filepath.Join(base, "s.sock")
		}, false},
		{"sticky world-writable dir", func(t *testing.T, base string) string {
			require.NoError(t, os.Chmod(base, 0o777|os.ModeSticky))
			return filepath.Join(base, "s.sock")
		}, false},
		{"sticky world-writable dir of another user", func(t *testing.T, base string) string {
			// Its owner may remove or rename what anyone put in it.
			require.NoError(t, os.Mkdir(filepath.Join(base, "shared"), 0o700))
			require.NoError(t, os.Chmod(filepath.Join(base, "shared"), 0o777|os.ModeSticky))
			require.NoError(t, os.Chown(filepath.Join(base, "shared"), otherUID, otherUID))
			return filepath.Join(base, "shared", "s.sock")
		}, true},
		{"dir of another user, not writable by others", func(t *testing.T, base string) string {
			// Its owner may rename what it holds, whatever its mode.
			require.NoError(t, os.Mkdir(filepath.Join(base, "theirs"), 0o755))
			require.NoError(t, os.Chown(filepath.Join(base, "theirs"), otherUID, otherUID))
			return filepath.Join(base, "theirs", "s.sock")
		}, true},
		{"our group-writable dir", func(t *testing.T, base string) string {
			require.NoError(t, os.Mkdir(filepath.Join(base, "group"), 0o770))
			require.NoError(t, os.Chmod(filepath.Join(base, "group"), 0o770))
			return filepath.Join(base, "group", "s.sock")
		}, false},
		{"world-writable dir without sticky bit", func(t *testing.T, base string) string {
			require.NoError(t, os.Chmod(base, 0o777))
			return filepath.Join(base, "s.sock")
		}, true},
		{"world-writable ancestor without sticky bit", func(t *testing.T, base string) string {
			require.NoError(t, os.Mkdir(filepath.Join(base, "d"), 0o700))
			require.NoError(t, os.Chmod(base, 0o777))
			return filepath.Join(base, "d", "s.sock")
		}, true},
		{"world-writable dir to be made below", func(t *testing.T, base string) string {
			require.NoError(t, os.Chmod(base, 0o777))
			return filepath.Join(base, "new", "s.sock")
		}, true},
		{"symlink owned by us", func(t *testing.T, base string) string {
			return linkedSocket(t, base, os.Geteuid())
		}, false},
		{"symlink owned by root", func(t *testing.T, base string) string {
			return linkedSocket(t, base, 0)
		}, false},
		{"symlink owned by another user", func(t *testing.T, base string) string {
			return linkedSocket(t, base, otherUID)
		}, true},
		{"symlink owned by another user, deeper", func(t *testing.T, base string) string {
			require.NoError(t, os.MkdirAll(filepath.Join(base, "real", "sub"), 0o700))
			require.NoError(t, os.Symlink(filepath.Join(base, "real"), filepath.Join(base, "link")))
			require.NoError(t, os.Lchown(filepath.Join(base, "link"), otherUID, otherUID))
			return filepath.Join(base, "link", "sub", "s.sock")
		}, true},
		{"our symlink to an unsafe dir", func(t *testing.T, base string) string {
			require.NoError(t, os.Mkdir(filepath.Join(base, "open"), 0o777))
			require.NoError(t, os.Chmod(filepath.Join(base, "open"), 0o777))
			require.NoError(t, os.Symlink("open", filepath.Join(base, "link")))
			return filepath.Join(base, "link", "s.sock")
		}, true},
		{"our symlink to another user's symlink", func(t *testing.T, base string) string {
			require.NoError(t, os.Mkdir(filepath.Join(base, "real"), 0o700))
			require.NoError(t, os.Symlink("real", filepath.Join(base, "theirs")))
			require.NoError(t, os.Lchown(filepath.Join(base, "theirs"), otherUID, otherUID))
			require.NoError(t, os.Symlink("theirs", filepath.Join(base, "ours")))
			return filepath.Join(base, "ours", "s.sock")
		}, true},
	}
	starters := map[string]func(t *testing.T, path string) error{
		"UnixListener": func(t *testing.T, path string) error {
			ul := acomm.NewUnixListener(path, 0)
			t.Cleanup(func() { ul.Stop(0) })
			return ul.Start()
		},
		"Server": func(t *testing.T, path string) error {
			srv := acomm.NewServer(path, nil)
			t.Cleanup(srv.Stop)
			return srv.Start()
		},
		"Tracker": func(t *testing.T, path string) error {
			tr, err := acomm.NewTracker(path, nil, 0)
			require.NoError(t, err)
			t.Cleanup(tr.Stop)
			return tr.Start()
		},
	}
	for _, tc := range cases {
		for component, start := range starters {
			t.Run(tc.name+"/"+component, func(t *testing.T) {
				path := tc.setup(t, shortDir(t))
				err := start(t, path)
				if !tc.unsafe {
					require.NoError(t, err)
					return
				}
				require.ErrorIs(t, err, acomm.ErrUnsafeSocketPath)
				require.ErrorIs(t, err, acomm.ErrListen)
				_, statErr := os.Lstat(path)
				require.ErrorIs(t, statErr, os.ErrNotExist, "no socket made")
			})
		}
	}
}

// NewTracker("") makes its private temporary directory at Start, not
// before, removes it at Stop, and refuses, on a later Start, a directory
// of that name that someone else has made meanwhile.
func TestTrackerTempDir(t *testing.T) {
	requireRoot(t)
	cases := []struct {
		name   string
		remake func(t *testing.T, dir string)
		unsafe bool
	}{
		{"gone", func(*testing.T, string) {}, false},
		{"remade by us, private", func(t *testing.T, dir string) {
			require.NoError(t, os.Mkdir(dir, 0o700))
		}, false},
		{"remade by another user", func(t *testing.T, dir string) {
			require.NoError(t, os.Mkdir(dir, 0o700))
			require.NoError(t, os.Chown(dir, otherUID, otherUID))
		}, true},
		{"remade open to others", func(t *testing.T, dir string) {
			require.NoError(t, os.Mkdir(dir, 0o700))
			require.NoError(t, os.Chmod(dir, 0o755))
		}, true},
		{"remade as a symlink", func(t *testing.T, dir string) {
			require.NoError(t, os.Symlink(shortDir(t), dir))
		}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := acomm.NewTracker("", nil, 0)
			require.NoError(t, err)
			t.Cleanup(tr.Stop)
			dir := filepath.Dir(tr.Addr())
			_, err = os.Lstat(dir)
			require.ErrorIs(t, err, os.ErrNotExist, "made before Start")

			require.NoError(t, tr.Start())
			fi, err := os.Lstat(dir)
			require.NoError(t, err)
			require.Equal(t, os.FileMode(0o700), fi.Mode().Perm())
			tr.Stop()
			_, err = os.Lstat(dir)
			require.ErrorIs(t, err, os.ErrNotExist, "left by Stop")

			tc.remake(t, dir)
			t.Cleanup(func() { _ = os.RemoveAll(dir) })
			err = tr.Start()
			if tc.unsafe {
				require.ErrorIs(t, err, acomm.ErrUnsafeSocketPath)
				return
			}
			require.NoError(t, err)
			tr.Stop()
		})
	}
}
