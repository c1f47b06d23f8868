// Package pipeline batch-encodes a data set with an exported encoder as an
// Apache Beam pipeline, so that the same job runs in process (Beam's Prism
// runner), on a Prism job server, or on Dataflow, Flink or Spark.
//
// The launcher lists the work (Plan): each split of the source is cut into
// shards of consecutive images. The pipeline reshuffles the shards over the
// workers; each worker opens the model once (DoFn Setup), reads its
// shards' images (dataset.Stream.Window), encodes them in batches, and
// writes each shard's rows (id, label, code; package codetable) to a file
// of its own, whole or not at all. A shard's file has a name and content
// that depend on the shard alone, so a retried bundle rewrites the same
// file and every image appears exactly once. The manifest, which lists the
// shards and their counts, is written last, once every shard is done: a
// prefix without a manifest is not a finished output.
package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/filesystem"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/latent-ai/latent/codetable"
	"github.com/latent-ai/latent/dataset"
	"github.com/latent-ai/latent/inference"
	"github.com/latent-ai/latent/npyarray"
)

func init() {
	beam.RegisterType(reflect.TypeOf((*Shard)(nil)).Elem())
	beam.RegisterType(reflect.TypeOf((*Result)(nil)).Elem())
	register.DoFn3x1[context.Context, Shard, func(Result), error](&encodeFn{})
	register.Emitter1[Result]()
	register.DoFn3x1[context.Context, []byte, func(*Result) bool, error](&manifestFn{})
	register.Iter1[Result]()
}

// Beam counters of the pipeline, in the namespace "latent".
var (
	imagesEncoded = beam.NewCounter("latent", "images")
	badInputs     = beam.NewCounter("latent", "bad_inputs")
	batchesRun    = beam.NewCounter("latent", "batches")
)

// Source says where the images are, for the workers to open them as the
// launcher did: an IDX data set's folder, or a source of one's own images
// (dataset.OpenSplit). Workers must be able to read it at the same path.
type Source struct {
	Dataset string `json:"dataset,omitempty"` // IDX: mnist or fashion-mnist
	Dir     string `json:"dir,omitempty"`     // IDX: the folder

	Path         string  `json:"path,omitempty"` // own images: folder, glob, .npy, .parquet
	Format       string  `json:"format,omitempty"`
	Input        []int   `json:"input,omitempty"`
	Fit          string  `json:"fit,omitempty"`
	TestFraction float64 `json:"test_fraction,omitempty"`
	Seed         uint64  `json:"seed,omitempty"`
	Strict       bool    `json:"strict,omitempty"`
}

// Open opens one split of the source, to encode: an IDX split skips the
// MD5 of its images (dataset.Stream.SkipMD5).
func (s Source) Open(split string) (*dataset.Stream, error) {
	if s.Path == "" {
		st, err := dataset.OpenIDX(s.Dataset, s.Dir, split)
		if err != nil {
			return nil, err
		}
		st.SkipMD5()
		return st, nil
	}
	return dataset.OpenSplit(s.Path, dataset.OpenOptions{Format: s.Format, Input: s.Input, Fit: s.Fit,
		TestFraction: s.TestFraction, Seed: s.Seed, Strict: s.Strict}, split)
}

// Config is one encoding job.
type Config struct {
	// Model is the encoder, encoder.onnx: a local path, or a URL of any
	// filesystem Beam knows (gs://...), that every worker can read.
	Model  string `json:"model"`
	Source Source `json:"source"`
	// Splits are the splits to encode, in order: "train", "test" or both.
	Splits []string `json:"splits"`
	// Out is the output prefix: the shards are OUT-SPLIT-00003-of-00016.EXT
	// and the manifest OUT-manifest.json.
	Out string `json:"out"`
	// Format is the shards' format: parquet, jsonl or csv (package
	// codetable), or npy: the codes, float32 [rows, b], in SHARD.npy, with
	// the labels, uint8 [rows], in SHARD-labels.npy and the ids, a line
	// each, in SHARD-ids.txt.
	Format string `json:"format"`
	// ShardSize is the number of images of a shard (0: 10,000), unless
	// Shards is set.
	ShardSize int `json:"shard_size"`
	// Shards, when not 0, is the number of shards to cut the images into,
	// about equal: at least as many as the runner has workers.
	Shards int `json:"shards,omitempty"`
	// Batch is the number of images per ONNX Runtime call (0: 1000).
	Batch int `json:"batch"`
	// Threads is ONNX Runtime's threads per operator in each worker (0:
	// one per core of the worker's machine). A worker that runs several
	// bundles at once should take fewer.
	Threads int `json:"threads"`
	// FailFirst, for tests only, fails the first attempt of each shard
	// with this probability, seeded by the shard: the way to check that a
	// failed and retried bundle leaves each image exactly once.
	FailFirst float64 `json:"fail_first,omitempty"`
}

// Shard is one unit of work: images Lo to Hi-1 of a split, the Index-th
// of Of shards.
type Shard struct {
	Index, Of int
	Split     string
	Lo, Hi    int
}

// Result is what a shard wrote: its file and its rows.
type Result struct {
	Shard   Shard
	Path    string
	Rows    int
	Skipped []string // the images that could not be read, and why
}

// Plan checks the job and lists its shards: it opens each split to count
// its images, so that a missing data set, an unknown format or a bad
// configuration is an error before the pipeline starts.
func Plan(cfg Config) ([]Shard, error) {
	if cfg.Format != "npy" && codetable.FormatOf("x."+cfg.Format) != cfg.Format {
		return nil, fmt.Errorf("pipeline: format %q: want parquet, jsonl, csv or npy", cfg.Format)
	}
	if cfg.Out == "" {
		return nil, errors.New("pipeline: no output prefix")
	}
	size := cfg.ShardSize
	if size == 0 {
		size = 10000
	}
	if size < 1 || cfg.Shards < 0 || cfg.Batch < 0 || cfg.Threads < 0 || cfg.FailFirst < 0 || cfg.FailFirst > 1 {
		return nil, fmt.Errorf("pipeline: shard size %d, %d shards, batch %d, threads %d, fail-first %v: want positive sizes, counts of 0 or more, a probability", size, cfg.Shards, cfg.Batch, cfg.Threads, cfg.FailFirst)
	}
	var lens []int
	total := 0
	for _, split := range cfg.Splits {
		st, err := cfg.Source.Open(split)
		if err != nil {
			return nil, err
		}
		lens = append(lens, st.Len())
		total += st.Len()
	}
	if cfg.Shards > 0 {
		size = max(1, (total+cfg.Shards-1)/cfg.Shards)
	}
	var shards []Shard
	for i, split := range cfg.Splits {
		for lo := 0; lo < lens[i]; lo += size {
			shards = append(shards, Shard{Split: split, Lo: lo, Hi: min(lo+size, lens[i])})
		}
	}
	if len(shards) == 0 {
		return nil, errors.New("pipeline: the splits hold no images")
	}
	for i := range shards {
		shards[i].Index, shards[i].Of = i, len(shards)
	}
	return shards, nil
}

// ShardPath returns the file of shard sh.
func (cfg Config) ShardPath(sh Shard) string {
	return fmt.Sprintf("%s-%s-%05d-of-%05d.%s", cfg.Out, sh.Split, sh.Index, sh.Of, cfg.Format)
}

// ManifestPath returns the file of the manifest.
func (cfg Config) ManifestPath() string { return cfg.Out + "-manifest.json" }

// Build adds the job to s: the shards, reshuffled over the workers, encoded
// into their files, then the manifest.
func Build(s beam.Scope, cfg Config, shards []Shard) {
	s = s.Scope("latent.encode")
	work := beam.Reshuffle(s, beam.CreateList(s, shards))
	results := beam.ParDo(s, &encodeFn{Cfg: cfg}, work)
	beam.ParDo0(s, &manifestFn{Cfg: cfg, Shards: len(shards)}, beam.Impulse(s), beam.SideInput{Input: results})
}

// encodeFn encodes shards. Its instances in one worker process share one
// opened model (see sharedModel).
type encodeFn struct {
	Cfg    Config
	shared *sharedModel
	model  *inference.Model
}

// sharedModel is a model opened once per worker process for every DoFn
// instance that asks for it, however many bundles the runner runs at once
// (Prism runs them all), and the slots that bound how many shards encode
// at once: as many as the cores allow with the model's threads.
type sharedModel struct {
	model *inference.Model
	refs  int
	slots chan struct{}
}

var shared struct {
	sync.Mutex
	models map[string]*sharedModel
}

func (f *encodeFn) Setup(ctx context.Context) error {
	key := fmt.Sprintf("%s|%d|%d", f.Cfg.Model, f.Cfg.Threads, f.Cfg.Batch)
	shared.Lock()
	defer shared.Unlock()
	if sm := shared.models[key]; sm != nil {
		sm.refs++
		f.shared, f.model = sm, sm.model
		return nil
	}
	data, err := readAll(ctx, f.Cfg.Model)
	if err != nil {
		return fmt.Errorf("pipeline: model %s: %w", f.Cfg.Model, err)
	}
	m, err := inference.OpenBytes(data, nil, inference.Options{IntraOpThreads: f.Cfg.Threads, MaxBatch: max(f.Cfg.Batch, 1000)})
	if err != nil {
		return fmt.Errorf("pipeline: model %s: %w", f.Cfg.Model, err)
	}
	threads := f.Cfg.Threads
	if threads == 0 {
		threads = runtime.NumCPU()
	}
	sm := &sharedModel{model: m, refs: 1, slots: make(chan struct{}, max(1, runtime.NumCPU()/threads))}
	if shared.models == nil {
		shared.models = map[string]*sharedModel{}
	}
	shared.models[key] = sm
	f.shared, f.model = sm, m
	return nil
}

func (f *encodeFn) Teardown() error {
	if f.shared == nil {
		return nil
	}
	shared.Lock()
	defer shared.Unlock()
	f.shared.refs--
	if f.shared.refs > 0 {
		return nil
	}
	for k, sm := range shared.models {
		if sm == f.shared {
			delete(shared.models, k)
		}
	}
	return f.shared.model.Close()
}

// ProcessElement encodes the images of sh and writes them to their file.
func (f *encodeFn) ProcessElement(ctx context.Context, sh Shard, emit func(Result)) error {
	cfg := f.Cfg
	select {
	case f.shared.slots <- struct{}{}:
		defer func() { <-f.shared.slots }()
	case <-ctx.Done():
		return ctx.Err()
	}
	if cfg.FailFirst > 0 && firstAttempt(cfg, sh) && shardRand(sh).Float64() < cfg.FailFirst {
		return fmt.Errorf("pipeline: shard %d: failure injected on its first attempt (FailFirst %v)", sh.Index, cfg.FailFirst)
	}
	st, err := openShared(cfg.Source, sh.Split)
	if err != nil {
		return err
	}
	if !slices.Equal(st.Shape(), f.model.ImageShape()) {
		return fmt.Errorf("pipeline: the images are %v, the encoder takes %v", st.Shape(), f.model.ImageShape())
	}
	win := st.Window(sh.Lo, sh.Hi)
	b := f.model.Bottleneck()
	batch := cfg.Batch
	if batch == 0 {
		batch = 1000
	}
	path := cfg.ShardPath(sh)
	res := Result{Shard: sh, Path: path}
	err = writeFile(ctx, path, func(w io.Writer) error {
		var t codetable.Writer = &npyShard{ctx: ctx, w: w, path: path, b: b}
		if cfg.Format != "npy" {
			if t, err = codetable.Create(w, cfg.Format, b, st.Labelled()); err != nil {
				return err
			}
		}
		var in []float32
		rows := make([]codetable.Row, 0, batch)
		err = win.Scan(ctx, batch, func(off int, set *dataset.Set) error {
			in = set.Floats(in, 0, set.N)
			codes, err := f.model.EncodeContext(ctx, in, set.N)
			if err != nil {
				return fmt.Errorf("shard %d: %w", sh.Index, err)
			}
			rows = rows[:0]
			for i := range set.N {
				rows = append(rows, codetable.Row{ID: set.ID(i, sh.Lo+off), Label: int(set.Labels[i]), Code: codes[i*b : (i+1)*b]})
			}
			res.Rows += set.N
			imagesEncoded.Inc(ctx, int64(set.N))
			batchesRun.Inc(ctx, 1)
			return t.Write(rows...)
		})
		if err != nil {
			return err
		}
		return t.Close()
	})
	if err != nil {
		return err
	}
	for _, s := range win.Skipped() {
		res.Skipped = append(res.Skipped, s.Path+": "+s.Err.Error())
	}
	badInputs.Inc(ctx, int64(len(res.Skipped)))
	fmt.Fprintf(os.Stderr, "latent: shard %d of %d (%s %d-%d): %d images -> %s\n", sh.Index+1, sh.Of, sh.Split, sh.Lo, sh.Hi-1, res.Rows, path)
	emit(res)
	return nil
}

// npyShard is a shard's table in the npy format (see Config.Format): it
// keeps the shard's rows, and on Close writes the labels and the ids, each
// whole, then the codes to w, the shard's own file, which is committed
// last.
type npyShard struct {
	ctx    context.Context
	w      io.Writer
	path   string
	b      int
	codes  []float32
	labels []uint8
	ids    []string
}

func (n *npyShard) Write(rows ...codetable.Row) error {
	for _, r := range rows {
		n.codes = append(n.codes, r.Code...)
		n.labels = append(n.labels, uint8(r.Label))
		n.ids = append(n.ids, r.ID)
	}
	return nil
}

func (n *npyShard) Close() error {
	base := strings.TrimSuffix(n.path, ".npy")
	err := writeFile(n.ctx, base+"-labels.npy", func(w io.Writer) error {
		if err := npyarray.WriteHeader(w, npyarray.Uint8, []int{len(n.labels)}); err != nil {
			return err
		}
		_, err := w.Write(n.labels)
		return err
	})
	if err != nil {
		return err
	}
	err = writeFile(n.ctx, base+"-ids.txt", func(w io.Writer) error {
		_, err := io.WriteString(w, strings.Join(n.ids, "\n")+"\n")
		return err
	})
	if err != nil {
		return err
	}
	if err := npyarray.WriteHeader(n.w, npyarray.Float32, []int{len(n.labels), n.b}); err != nil {
		return err
	}
	return npyarray.WriteFloat32s(n.w, n.codes)
}

// listings holds, per worker process, the splits of the own sources its
// shards read, opened once: listing a folder of a million pictures, or
// finding a float array's scale, is work for one shard, not for each.
var listings struct {
	sync.Mutex
	splits map[string]*dataset.Stream
}

// openShared opens split of src as Source.Open does, once per process for
// a source of one's own images. The Stream is only windowed (each Window
// is a copy that scans on its own), never scanned itself. IDX splits are
// opened each time: their listing is the labels file, and their Stream
// records its files as it is scanned.
func openShared(src Source, split string) (*dataset.Stream, error) {
	if src.Path == "" {
		return src.Open(split)
	}
	key, err := json.Marshal(struct {
		Source
		Split string
	}{src, split})
	if err != nil {
		return nil, err
	}
	listings.Lock()
	defer listings.Unlock()
	if st := listings.splits[string(key)]; st != nil {
		return st, nil
	}
	st, err := src.Open(split)
	if err != nil {
		return nil, err
	}
	if listings.splits == nil {
		listings.splits = map[string]*dataset.Stream{}
	}
	listings.splits[string(key)] = st
	return st, nil
}

// shardRand is the seeded source of a shard's injected failure.
func shardRand(sh Shard) *rand.Rand {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s/%d", sh.Split, sh.Index)
	return rand.New(rand.NewPCG(h.Sum64(), 1))
}

// firstAttempt records an attempt at sh beside the output and reports
// whether it was the first (tests only: see Config.FailFirst).
func firstAttempt(cfg Config, sh Shard) bool {
	marker := cfg.ShardPath(sh) + ".attempted"
	f, err := os.OpenFile(marker, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

// Manifest lists what a finished job wrote.
type Manifest struct {
	Config  Config          `json:"config"`
	Images  int             `json:"images"`
	Skipped []string        `json:"skipped,omitempty"`
	Shards  []ManifestShard `json:"shards"`
}

// ManifestShard is one shard's entry in the manifest.
type ManifestShard struct {
	Path  string `json:"path"`
	Split string `json:"split"`
	First int    `json:"first"` // the split's positions First to First+Listed-1
	Rows  int    `json:"rows"`
}

// manifestFn writes the manifest once every shard's result is in, and
// refuses to write it when any of the Shards is missing: a runner may run
// it with what a failed job produced.
type manifestFn struct {
	Cfg    Config
	Shards int
}

func (f *manifestFn) ProcessElement(ctx context.Context, _ []byte, results func(*Result) bool) error {
	byIndex := map[int]Result{}
	var r Result
	for results(&r) {
		byIndex[r.Shard.Index] = r // a retried shard's results are the same
	}
	m := Manifest{Config: f.Cfg}
	indices := make([]int, 0, len(byIndex))
	for i := range byIndex {
		indices = append(indices, i)
	}
	sort.Ints(indices)
	if len(indices) != f.Shards {
		return fmt.Errorf("pipeline: %d of %d shards are done: the manifest is not written", len(indices), f.Shards)
	}
	for want, i := range indices {
		if i != want {
			return fmt.Errorf("pipeline: no result for shard %d: the manifest is not written", want)
		}
		r := byIndex[i]
		if r.Shard.Of != len(indices) {
			return fmt.Errorf("pipeline: %d results for %d shards: the manifest is not written", len(indices), r.Shard.Of)
		}
		m.Shards = append(m.Shards, ManifestShard{Path: r.Path, Split: r.Shard.Split, First: r.Shard.Lo, Rows: r.Rows})
		m.Images += r.Rows
		m.Skipped = append(m.Skipped, r.Skipped...)
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	path := f.Cfg.ManifestPath()
	if err := writeFile(ctx, path, func(w io.Writer) error { _, err := w.Write(append(data, '\n')); return err }); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "latent: %d images in %d shards; manifest %s\n", m.Images, len(m.Shards), path)
	return nil
}

// ReadManifest reads the manifest of the output prefix out.
func ReadManifest(ctx context.Context, out string) (*Manifest, error) {
	data, err := readAll(ctx, out+"-manifest.json")
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("pipeline: manifest of %s: %w", out, err)
	}
	return &m, nil
}

// readAll reads the file at path, local or on a Beam filesystem.
func readAll(ctx context.Context, path string) ([]byte, error) {
	if !strings.Contains(path, "://") {
		return os.ReadFile(path)
	}
	fs, err := filesystem.New(ctx, path)
	if err != nil {
		return nil, err
	}
	defer fs.Close()
	r, err := fs.OpenRead(ctx, path)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

// writeFile writes path whole or not at all: a local file through a
// temporary file and a rename, a file on another Beam filesystem through
// its writer, whose Close commits the object.
func writeFile(ctx context.Context, path string, fill func(io.Writer) error) error {
	if !strings.Contains(path, "://") {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
		if err != nil {
			return err
		}
		defer os.Remove(tmp.Name())
		if err := fill(tmp); err != nil {
			tmp.Close()
			return err
		}
		if err := tmp.Sync(); err != nil {
			tmp.Close()
			return err
		}
		if err := tmp.Close(); err != nil {
			return err
		}
		return os.Rename(tmp.Name(), path)
	}
	fs, err := filesystem.New(ctx, path)
	if err != nil {
		return err
	}
	defer fs.Close()
	w, err := fs.OpenWrite(ctx, path)
	if err != nil {
		return err
	}
	if err := fill(w); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}
