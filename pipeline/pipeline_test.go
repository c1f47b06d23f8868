package pipeline

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/runners/prism"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/runners/universal"

	"github.com/latent-ai/latent/codetable"
	"github.com/latent-ai/latent/dataset"
	"github.com/latent-ai/latent/exporter"
	"github.com/latent-ai/latent/inference"
	"github.com/latent-ai/latent/internal/mnisttest"
	"github.com/latent-ai/latent/internal/modeltest"
	"github.com/latent-ai/latent/npyarray"
)

func TestMain(m *testing.M) {
	flag.Parse()
	beam.Init()
	// Prism logs every job's steps; the tests want its errors only.
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError + 4})))
	os.Exit(m.Run())
}

// exportedConv writes a conv model with seeded random weights and exports
// its encoder; it returns the encoder's path.
func exportedConv(t *testing.T) string {
	t.Helper()
	m := modeltest.Random(t, "conv", 10, 5)
	dir := t.TempDir()
	enc, _, err := exporter.Export(m, nil, dir)
	if err != nil {
		t.Fatal(err)
	}
	return enc
}

// reference encodes the splits as latent encode does, 1000 images a call,
// and returns each image's code by its id.
func reference(t *testing.T, encoder string, src Source, splits []string) map[string][]float32 {
	t.Helper()
	m, err := inference.Open(encoder, "", inference.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	b := m.Bottleneck()
	out := map[string][]float32{}
	for _, split := range splits {
		st, err := src.Open(split)
		if err != nil {
			t.Fatal(err)
		}
		var in []float32
		err = st.Scan(context.Background(), 1000, func(off int, set *dataset.Set) error {
			in = set.Floats(in, 0, set.N)
			codes, err := m.Encode(in, set.N)
			for i := range set.N {
				out[split+"/"+strconv.Itoa(off+i)] = codes[i*b : (i+1)*b]
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// run builds the job into a pipeline and runs it with execute.
func run(t *testing.T, cfg Config, execute func(context.Context, *beam.Pipeline) (beam.PipelineResult, error)) error {
	t.Helper()
	shards, err := Plan(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p, s := beam.NewPipelineWithRoot()
	Build(s, cfg, shards)
	_, err = execute(context.Background(), p)
	return err
}

// collect reads every shard the manifest of cfg lists and returns the codes
// by id, failing on an id seen twice or a shard file the manifest does not
// list.
func collect(t *testing.T, cfg Config) map[string][]float32 {
	t.Helper()
	m, err := ReadManifest(context.Background(), cfg.Out)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]float32{}
	listed := map[string]bool{}
	for _, sh := range m.Shards {
		listed[sh.Path] = true
		data, err := os.ReadFile(sh.Path)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := codetable.ReadParquet(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != sh.Rows {
			t.Errorf("%s: %d rows, the manifest says %d", sh.Path, len(rows), sh.Rows)
		}
		for _, r := range rows {
			if _, dup := got[r.ID]; dup {
				t.Fatalf("%s appears twice", r.ID)
			}
			got[r.ID] = r.Code
		}
	}
	files, _ := filepath.Glob(cfg.Out + "-*." + cfg.Format)
	for _, f := range files {
		if !listed[f] {
			t.Errorf("%s is not in the manifest", f)
		}
	}
	if m.Images != len(got) {
		t.Errorf("the manifest counts %d images, the shards hold %d", m.Images, len(got))
	}
	return got
}

// same reports the first id whose codes differ between got and want.
func same(got, want map[string][]float32) string {
	if len(got) != len(want) {
		return fmt.Sprintf("%d codes, want %d", len(got), len(want))
	}
	ids := make([]string, 0, len(want))
	for id := range want {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if !slices.Equal(got[id], want[id]) {
			return fmt.Sprintf("%s: %v, want %v", id, got[id], want[id])
		}
	}
	return ""
}

// TestAgreesWithEncode encodes MNIST's 70,000 images through the pipeline,
// on the in-process Prism runner and then on a Prism job server on
// loopback (the universal runner, LOOPBACK environment), and checks that
// both give latent encode's codes, bit for bit, each image exactly once.
func TestAgreesWithEncode(t *testing.T) {
	if testing.Short() {
		t.Skip("encodes 70,000 images three times")
	}
	if _, _, err := inference.Runtime(); err != nil {
		t.Fatal(err)
	}
	src := Source{Dataset: dataset.MNIST, Dir: mnisttest.Dir(t)}
	encoder := exportedConv(t)
	splits := []string{dataset.Train, dataset.Test}
	want := reference(t, encoder, src, splits)

	cfg := Config{Model: encoder, Source: src, Splits: splits, Out: filepath.Join(t.TempDir(), "codes"), Format: "parquet", ShardSize: 9000, Threads: 1}
	if err := run(t, cfg, prism.Execute); err != nil {
		t.Fatal(err)
	}
	if d := same(collect(t, cfg), want); d != "" {
		t.Fatalf("in process: %s", d)
	}

	port := freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := prism.CreateJobServer(ctx, prism.Options{Port: port}); err != nil {
		t.Fatal(err)
	}
	cfg.Out = filepath.Join(t.TempDir(), "codes")
	restore := setFlags(t, map[string]string{"endpoint": "localhost:" + strconv.Itoa(port), "environment_type": "LOOPBACK"})
	defer restore()
	if err := run(t, cfg, universal.Execute); err != nil {
		t.Fatal(err)
	}
	if d := same(collect(t, cfg), want); d != "" {
		t.Fatalf("on the job server: %s", d)
	}
}

// freePort returns a TCP port free on loopback.
func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// setFlags sets Beam's flags and returns a function that puts them back.
func setFlags(t *testing.T, values map[string]string) func() {
	old := map[string]string{}
	for name, v := range values {
		f := flag.Lookup(name)
		if f == nil {
			t.Fatalf("no flag %q", name)
		}
		old[name] = f.Value.String()
		flag.Set(name, v)
	}
	return func() {
		for name, v := range old {
			flag.Set(name, v)
		}
	}
}

// TestFailedBundles injects failures into half of the shards' first
// attempts. Prism fails the job at the first failed bundle (it does not
// retry bundles; Dataflow and Flink do): each run returns the error and
// leaves no manifest, and the shards it finished stay whole. Running the
// job again, as a runner retries, completes it in the end, and every image
// is in the output exactly once, with latent encode's code.
func TestFailedBundles(t *testing.T) {
	if _, _, err := inference.Runtime(); err != nil {
		t.Fatal(err)
	}
	data := mnisttest.Dir(t)
	src := Source{Dataset: dataset.MNIST, Dir: data}
	encoder := exportedConv(t)
	cfg := Config{Model: encoder, Source: src, Splits: []string{dataset.Test}, Out: filepath.Join(t.TempDir(), "codes"),
		Format: "parquet", ShardSize: 1000, Threads: 1, FailFirst: 0.5}
	failures := 0
	for attempt := 1; ; attempt++ {
		err := run(t, cfg, prism.Execute)
		if err == nil {
			break
		}
		if !strings.Contains(err.Error(), "failure injected") || attempt == 10 {
			t.Fatalf("run %d: %v", attempt, err)
		}
		failures++
		if _, err := os.Stat(cfg.ManifestPath()); err == nil {
			t.Fatalf("run %d failed but wrote the manifest", attempt)
		}
	}
	if failures == 0 {
		t.Fatal("no injected failure: the test checks nothing")
	}
	t.Logf("%d failed runs before the job completed", failures)
	if d := same(collect(t, cfg), reference(t, encoder, src, cfg.Splits)); d != "" {
		t.Fatal(d)
	}
}

// TestBadInput checks the errors of a missing data folder, an unknown
// format and an unreadable model: before the run, or from it without a
// manifest.
func TestBadInput(t *testing.T) {
	if _, _, err := inference.Runtime(); err != nil {
		t.Fatal(err)
	}
	data := mnisttest.Dir(t)
	out := filepath.Join(t.TempDir(), "codes")
	missing := Config{Source: Source{Dataset: dataset.MNIST, Dir: filepath.Join(t.TempDir(), "none")}, Splits: []string{dataset.Test}, Out: out, Format: "parquet"}
	if _, err := Plan(missing); err == nil || !strings.Contains(err.Error(), "missing in folder") {
		t.Errorf("missing data: %v", err)
	}
	bad := Config{Source: Source{Dataset: dataset.MNIST, Dir: data}, Splits: []string{dataset.Test}, Out: out, Format: "xlsx"}
	if _, err := Plan(bad); err == nil || !strings.Contains(err.Error(), "format") {
		t.Errorf("format xlsx: %v", err)
	}
	broken := filepath.Join(t.TempDir(), "encoder.onnx")
	os.WriteFile(broken, []byte("not a model"), 0o644)
	cfg := Config{Model: broken, Source: Source{Dataset: dataset.MNIST, Dir: data}, Splits: []string{dataset.Test}, Out: out, Format: "jsonl", ShardSize: 5000}
	if err := run(t, cfg, prism.Execute); err == nil || !strings.Contains(err.Error(), broken) {
		t.Errorf("an unreadable model: %v", err)
	}
	if _, err := os.Stat(cfg.ManifestPath()); err == nil {
		t.Error("a failed job wrote its manifest")
	}
}

// TestNPYShards writes the test split as .npy shards and checks each
// shard's codes, labels and ids against the reference.
func TestNPYShards(t *testing.T) {
	if _, _, err := inference.Runtime(); err != nil {
		t.Fatal(err)
	}
	src := Source{Dataset: dataset.MNIST, Dir: mnisttest.Dir(t)}
	encoder := exportedConv(t)
	cfg := Config{Model: encoder, Source: src, Splits: []string{dataset.Test}, Out: filepath.Join(t.TempDir(), "codes"), Format: "npy", Shards: 3, Threads: 1}
	if err := run(t, cfg, prism.Execute); err != nil {
		t.Fatal(err)
	}
	want := reference(t, encoder, src, cfg.Splits)
	set, err := dataset.Load(dataset.MNIST, src.Dir, dataset.Test)
	if err != nil {
		t.Fatal(err)
	}
	m, err := ReadManifest(context.Background(), cfg.Out)
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for _, sh := range m.Shards {
		codes, shape, err := npyarray.ReadFile(sh.Path)
		if err != nil {
			t.Fatal(err)
		}
		base := strings.TrimSuffix(sh.Path, ".npy")
		labels, _, err := npyarray.ReadFile(base + "-labels.npy")
		if err != nil {
			t.Fatal(err)
		}
		ids, err := os.ReadFile(base + "-ids.txt")
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(ids)), "\n")
		if shape[0] != sh.Rows || len(labels) != sh.Rows || len(lines) != sh.Rows {
			t.Fatalf("%s: %v codes, %d labels, %d ids, %d rows in the manifest", sh.Path, shape, len(labels), len(lines), sh.Rows)
		}
		b := shape[1]
		for i, id := range lines {
			j, _ := strconv.Atoi(strings.TrimPrefix(id, "test/"))
			if !slices.Equal(codes[i*b:(i+1)*b], want[id]) || uint8(labels[i]) != set.Labels[j] {
				t.Fatalf("%s row %d (%s): other code or label", sh.Path, i, id)
			}
		}
		got += sh.Rows
	}
	if got != 10000 || len(m.Shards) != 3 {
		t.Errorf("%d rows in %d shards, want 10000 in 3", got, len(m.Shards))
	}
}
