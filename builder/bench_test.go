package builder

import (
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

func discardSink() *logSink {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return &logSink{log: l, file: io.Discard}
}

// BenchmarkOrchestration measures ipa-oci's per-phase container overhead with a container
// that prints one line and exits: create -> first log line, and teardown (exit -> removed).
func BenchmarkOrchestration(b *testing.B) {
	needEnv(b)
	ctx := context.Background()
	var firstLine, teardown, total time.Duration
	for i := 0; i < b.N; i++ {
		st, err := runContainer(ctx, tenv.cli, runSpec{
			phase: "bench", image: tenv.imageID, cmd: []string{"/bin/echo", "ready"},
			user: "1000:1000", network: "none", labels: map[string]string{LabelManaged: "true", LabelPhase: "bench"},
		}, discardSink())
		if err != nil {
			b.Fatal(err)
		}
		if st.lines != 1 {
			b.Fatalf("got %d lines, want 1", st.lines)
		}
		firstLine += st.firstLine.Sub(st.created)
		teardown += st.removed.Sub(st.exited)
		total += st.removed.Sub(st.created)
	}
	n := float64(b.N)
	b.ReportMetric(float64(firstLine.Milliseconds())/n, "ms-create-to-first-line")
	b.ReportMetric(float64(teardown.Milliseconds())/n, "ms-teardown")
	b.ReportMetric(float64(total.Milliseconds())/n, "ms-total")
}

// BenchmarkLogThroughput streams 200,000 lines of 100 bytes from a container through the
// attach stream, the line splitter, logrus (discarding) and the build.log writer (discarding).
func BenchmarkLogThroughput(b *testing.B) {
	needEnv(b)
	ctx := context.Background()
	const lines, width = 200000, 100
	line := ">>> " + strings.Repeat("x", width-5)
	b.SetBytes(lines * width)
	var stream time.Duration
	for i := 0; i < b.N; i++ {
		st, err := runContainer(ctx, tenv.cli, runSpec{
			phase: "bench", image: tenv.imageID,
			cmd:  []string{"/bin/bash", "-c", "yes '" + line + "' | head -n 200000"},
			user: "1000:1000", network: "none", labels: map[string]string{LabelManaged: "true", LabelPhase: "bench"},
		}, discardSink())
		if err != nil {
			b.Fatal(err)
		}
		if st.lines != lines || st.bytes != lines*width {
			b.Fatalf("got %d lines / %d bytes, want %d / %d", st.lines, st.bytes, lines, lines*width)
		}
		stream += st.exited.Sub(st.started)
	}
	b.ReportMetric(float64(lines*b.N)/stream.Seconds(), "lines/s")
}

// BenchmarkNoopRebuild measures a rebuild with warm caches and unchanged inputs (the stand-in
// tree, so almost all of it is ipa-oci's own work: hashing inputs, git ls-remote, one build
// container); it fails if the fetch phase runs again.
func BenchmarkNoopRebuild(b *testing.B) {
	f := newFixture(b)
	out := b.TempDir()
	cold := time.Now()
	if _, err := Build(context.Background(), f.options(out)); err != nil {
		b.Fatal(err)
	}
	coldMs := float64(time.Since(cold).Milliseconds())
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := Build(context.Background(), f.options(out))
		if err != nil {
			b.Fatal(err)
		}
		if !res.FetchSkipped {
			b.Fatal("warm rebuild ran the fetch phase")
		}
	}
	b.ReportMetric(coldMs, "ms-cold-build")
}

// BenchmarkLockResolve measures ResolveLock against the test index (internal/lockfixture: 12
// wheel files, a 7-wheel closure, two architectures): cold, with an empty download cache, git
// mirrors and Buildroot tarball cache (everything fetched), and warm, with the caches of a
// previous resolution (index pages and git refs read again, no wheel downloaded).
func BenchmarkLockResolve(b *testing.B) {
	for _, mode := range []string{"cold", "warm"} {
		b.Run(mode, func(b *testing.B) {
			f, in := newLockFixture(b)
			o := f.lockOptions(in, "")
			if _, err := ResolveLock(context.Background(), o); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if mode == "cold" {
					b.StopTimer()
					fresh := b.TempDir()
					o.DLDir, o.CacheDir = filepath.Join(fresh, "dl"), filepath.Join(fresh, "cache")
					b.StartTimer()
				}
				if _, err := ResolveLock(context.Background(), o); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
