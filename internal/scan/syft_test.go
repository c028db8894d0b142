package scan_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkVsSyft compares Bulwark with syft on the same image and the same
// job, a CycloneDX SBOM of the big test image, both run as child processes:
//
//	syft scan docker-archive:big.tar -o cyclonedx-json
//	bulwark scan image --skip-db --format cyclonedx docker-archive:big.tar
//
// The target is Bulwark at least 3× faster. syft is not a
// dependency: build it outside the repository and point $SYFT at it (or
// put it on $PATH), e.g.
//
//	GOBIN=/tmp/syft go install github.com/anchore/syft/cmd/syft@v1.57.1
//	SYFT=/tmp/syft/syft go test ./internal/scan -run '^$' -bench VsSyft -benchtime 1x
//
// The benchmark skips when syft is absent. It reports each tool's wall and
// CPU seconds (the children's rusage) and their ratios.
func BenchmarkVsSyft(b *testing.B) {
	syft := os.Getenv("SYFT")
	if syft == "" {
		var err error
		if syft, err = exec.LookPath("syft"); err != nil {
			b.Skip("syft not found: set $SYFT or put it on $PATH (see the benchmark's doc comment)")
		}
	}
	img := bigImage(b)
	bin := bulwarkBinary(b)
	dir := b.TempDir()
	var bw, sy childRun
	// syft reads its options from the environment; the launcher passes the
	// benchmark's environment on.
	b.Setenv("SYFT_CHECK_FOR_APP_UPDATE", "false")
	b.Setenv("TMPDIR", dir)
	for b.Loop() {
		bw.add(b, bin, "scan", "image", "--skip-db", "--no-progress",
			"--format", "cyclonedx", "-o", filepath.Join(dir, "bulwark.cdx.json"), "docker-archive:"+img.DockerArchive)
		sy.add(b, syft, "scan", "docker-archive:"+img.DockerArchive,
			"-o", "cyclonedx-json="+filepath.Join(dir, "syft.cdx.json"), "-q")
	}
	n := float64(b.N)
	b.ReportMetric(bw.wall.Seconds()/n, "bulwark-wall-s/op")
	b.ReportMetric(bw.cpu.Seconds()/n, "bulwark-cpu-s/op")
	b.ReportMetric(sy.wall.Seconds()/n, "syft-wall-s/op")
	b.ReportMetric(sy.cpu.Seconds()/n, "syft-cpu-s/op")
	b.ReportMetric(sy.wall.Seconds()/bw.wall.Seconds(), "wall-ratio")
	b.ReportMetric(sy.cpu.Seconds()/bw.cpu.Seconds(), "cpu-ratio")
	b.ReportMetric(float64(bw.peak)/(1<<20), "bulwark-peak-MB")
	b.ReportMetric(float64(sy.peak)/(1<<20), "syft-peak-MB")
	// Both must have done the job: component counts, for the record.
	b.Logf("components: bulwark %d, syft %d", components(b, filepath.Join(dir, "bulwark.cdx.json")), components(b, filepath.Join(dir, "syft.cdx.json")))
}

type childRun struct {
	wall, cpu time.Duration
	peak      int64
}

// add runs one command through runMeasured (so its peak RSS is its own)
// and adds its wall time, CPU time and peak.
func (c *childRun) add(b *testing.B, args ...string) {
	b.Helper()
	start := time.Now()
	ru := runMeasured(b, args...)
	c.wall += time.Since(start)
	c.cpu += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	c.peak = max(c.peak, ru.Maxrss*1024)
}

func components(b *testing.B, file string) int {
	b.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		b.Fatal(err)
	}
	var bom struct {
		Components []json.RawMessage `json:"components"`
	}
	if err := json.Unmarshal(data, &bom); err != nil {
		b.Fatalf("%s: %v", file, err)
	}
	if len(bom.Components) == 0 {
		b.Errorf("%s has no components", file)
	}
	return len(bom.Components)
}
