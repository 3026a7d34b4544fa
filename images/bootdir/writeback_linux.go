package bootdir

import (
	"os"

	"golang.org/x/sys/unix"
)

// startWriteback starts writing back [off, off+n) of f without waiting (best effort: errors
// surface at the fsync that follows).
func startWriteback(f *os.File, off, n int64) {
	_ = unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}
