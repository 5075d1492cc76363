//go:build linux

package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
)

// cpioWriter writes a "newc" cpio archive as the kernel's initramfs
// unpacker expects it (see Documentation/driver-api/early-userspace).
// Parent directories are emitted automatically before their contents,
// because the kernel does not create missing parents.
type cpioWriter struct {
	w    *bufio.Writer
	ino  uint32
	dirs map[string]bool
	seen map[string]bool
	err  error
}

func newCpioWriter(w io.Writer) *cpioWriter {
	return &cpioWriter{w: bufio.NewWriterSize(w, 1<<20), ino: 1000, dirs: map[string]bool{"": true, ".": true}, seen: map[string]bool{}}
}

const (
	modeDir  = 0o040000
	modeFile = 0o100000
	modeLink = 0o120000
)

func (c *cpioWriter) header(name string, mode uint32, size int64) {
	if c.err != nil {
		return
	}
	c.ino++
	nlink := 1
	if mode&0o170000 == modeDir {
		nlink = 2
	}
	_, c.err = fmt.Fprintf(c.w, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, nlink, 0, size, 0, 0, 0, 0, len(name)+1, 0)
	if c.err != nil {
		return
	}
	c.write([]byte(name + "\x00"))
	c.pad(110 + len(name) + 1)
}

func (c *cpioWriter) write(b []byte) {
	if c.err == nil {
		_, c.err = c.w.Write(b)
	}
}

func (c *cpioWriter) pad(n int) {
	if r := n % 4; r != 0 {
		c.write(make([]byte, 4-r))
	}
}

func clean(name string) string {
	return strings.TrimPrefix(path.Clean("/"+name), "/")
}

// mkdirAll emits directory entries for dir and its missing parents.
func (c *cpioWriter) mkdirAll(dir string) {
	dir = clean(dir)
	if c.dirs[dir] {
		return
	}
	c.mkdirAll(path.Dir(dir))
	c.dirs[dir] = true
	c.header(dir, modeDir|0o755, 0)
}

// Dir adds a directory.
func (c *cpioWriter) Dir(name string, perm uint32) {
	name = clean(name)
	c.mkdirAll(path.Dir(name))
	if !c.dirs[name] {
		c.dirs[name] = true
		c.header(name, modeDir|perm, 0)
	}
}

// Symlink adds a symbolic link.
func (c *cpioWriter) Symlink(name, target string) {
	name = clean(name)
	if c.seen[name] || c.dirs[name] {
		return
	}
	c.seen[name] = true
	c.mkdirAll(path.Dir(name))
	c.header(name, modeLink|0o777, int64(len(target)))
	c.write([]byte(target))
	c.pad(len(target))
}

// Bytes adds a regular file with the given content.
func (c *cpioWriter) Bytes(name string, perm uint32, data []byte) {
	name = clean(name)
	c.seen[name] = true
	c.mkdirAll(path.Dir(name))
	c.header(name, modeFile|perm, int64(len(data)))
	c.write(data)
	c.pad(len(data))
}

// File adds a regular file copied from the host (symlinks are followed).
func (c *cpioWriter) File(name, host string, perm uint32) {
	if c.err != nil {
		return
	}
	f, err := os.Open(host)
	if err != nil {
		c.err = err
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		c.err = err
		return
	}
	if perm == 0 {
		perm = uint32(st.Mode().Perm())
	}
	name = clean(name)
	c.seen[name] = true
	c.mkdirAll(path.Dir(name))
	c.header(name, modeFile|perm, st.Size())
	if c.err != nil {
		return
	}
	n, err := io.Copy(c.w, f)
	if err != nil {
		c.err = err
		return
	}
	if n != st.Size() {
		c.err = fmt.Errorf("%s changed size while archiving", host)
		return
	}
	c.pad(int(n))
}

// Has reports whether a file or link was already added at name.
func (c *cpioWriter) Has(name string) bool {
	return c.seen[clean(name)]
}

// Close writes the trailer and flushes.
func (c *cpioWriter) Close() error {
	c.header("TRAILER!!!", 0, 0)
	if c.err == nil {
		c.err = c.w.Flush()
	}
	return c.err
}
