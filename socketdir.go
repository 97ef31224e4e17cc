package acomm

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// maxSymlinks bounds the symbolic links followed when checking a path, as
// the kernel does (ELOOP).
const maxSymlinks = 40

// checkSocketDir refuses, with ErrUnsafeSocketPath, a socket directory
// that another user could redirect or replace: it walks the part of dir
// that exists, following symbolic links as the kernel will, and refuses a
// directory on the way that is world-writable without the sticky bit
// (anyone may rename what it holds; /tmp, which is sticky, is fine) or
// owned by another user than root and this process's (its owner may
// rename what it holds, whatever its mode), and a symbolic link owned by
// a user other than root and this process's (its owner may point it
// anywhere). What does not exist yet is created by this process, so the
// walk stops there.
func checkSocketDir(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("%w: socket directory %s: %w", ErrListen, dir, err)
	}
	me := os.Geteuid()
	pending := splitPath(abs)
	cur := string(filepath.Separator)
	links := 0
	for len(pending) > 0 {
		name := pending[0]
		pending = pending[1:]
		switch name {
		case "", ".":
			continue
		case "..":
			cur = filepath.Dir(cur)
			continue
		}
		next := filepath.Join(cur, name)
		fi, err := os.Lstat(next)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: socket directory: %w", ErrListen, err)
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			if uid, ok := fileOwner(fi); ok && uid != 0 && uid != me {
				return fmt.Errorf("%w: %s is a symbolic link owned by uid %d", ErrUnsafeSocketPath, next, uid)
			}
			if links++; links > maxSymlinks {
				return fmt.Errorf("%w: socket directory %s: too many symbolic links", ErrListen, dir)
			}
			target, err := os.Readlink(next)
			if err != nil {
				return fmt.Errorf("%w: socket directory: %w", ErrListen, err)
			}
			if filepath.IsAbs(target) {
				cur = string(filepath.Separator)
			}
			pending = append(splitPath(target), pending...)
			continue
		}
		if !fi.IsDir() {
			return nil // creating the socket's directory will fail
		}
		if fi.Mode()&0o002 != 0 && fi.Mode()&fs.ModeSticky == 0 {
			return fmt.Errorf("%w: %s is world-writable without the sticky bit", ErrUnsafeSocketPath, next)
		}
		// A directory's owner may rename what it holds (sticky or
		// not, and may make it writable): /tmp is root's; one of
		// another user's is theirs to rearrange.
		if uid, ok := fileOwner(fi); ok && uid != 0 && uid != me {
			return fmt.Errorf("%w: %s is owned by uid %d, who may rename what it holds", ErrUnsafeSocketPath, next, uid)
		}
		cur = next
	}
	return nil
}

// splitPath returns the names of p.
func splitPath(p string) []string {
	return strings.Split(p, string(filepath.Separator))
}

// makePrivateDir creates dir (mode 0700) for this process's sockets. An
// existing dir is adopted only if it is a directory (not a link to one)
// of this process's user that no one else may enter: one that someone
// else made in its place is refused with ErrUnsafeSocketPath. It reports
// whether it created dir.
func makePrivateDir(dir string) (created bool, err error) {
	if err := checkSocketDir(filepath.Dir(dir)); err != nil {
		return false, err
	}
	err = os.Mkdir(dir, 0o700)
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, fs.ErrExist) {
		return false, fmt.Errorf("%w: create socket directory: %w", ErrListen, err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return false, fmt.Errorf("%w: socket directory: %w", ErrListen, err)
	}
	if !fi.IsDir() {
		return false, fmt.Errorf("%w: %s is not a directory", ErrUnsafeSocketPath, dir)
	}
	if uid, ok := fileOwner(fi); ok && uid != os.Geteuid() {
		return false, fmt.Errorf("%w: %s is owned by uid %d", ErrUnsafeSocketPath, dir, uid)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return false, fmt.Errorf("%w: %s has mode %v, want no group or other access", ErrUnsafeSocketPath, dir, fi.Mode().Perm())
	}
	return false, nil
}
