package main

// umask returns the process's file mode creation mask: none on Windows.
func umask() int { return 0 }
