package bootdir

import "os"

// writebackChunk is how much written data is handed to the kernel's writeback at a time.
const writebackChunk = 8 << 20

// writeback writes to f and, every writebackChunk bytes, asks the kernel to start writing the
// new pages to disk (without waiting), so the fsync before the rename waits for the tail only
// instead of the whole blob.
type writeback struct {
	f              *os.File
	written, flush int64
}

func (w *writeback) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.written += int64(n)
	if w.written-w.flush >= writebackChunk {
		startWriteback(w.f, w.flush, w.written-w.flush)
		w.flush = w.written
	}
	return n, err
}
