package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/latent-ai/latent/atomicfile"
	"github.com/latent-ai/latent/codetable"
	"github.com/latent-ai/latent/dataset"
	"github.com/latent-ai/latent/exporter"
	"github.com/latent-ai/latent/inference"
	"github.com/latent-ai/latent/internal/progress"
	"github.com/latent-ai/latent/npyarray"
	"github.com/latent-ai/latent/onnxmeta"
	"github.com/latent-ai/latent/run"
)

func init() {
	register(&command{
		name:  "encode",
		args:  "RUN",
		short: "encode a split of the data with RUN/encoder.onnx: codes [N,b] and labels [N] as .npy, or a table of id, label and code as .parquet, .csv or .jsonl",
		setup: setupEncode,
	})
}

func setupEncode(fs *flag.FlagSet) func(context.Context, []string) error {
	var (
		split = fs.String("split", dataset.Test, "which images: train, test or all (train then test)")
		out   = fs.String("out", "", "codes file to write: .npy, float32 [N,b] (default RUN/codes-SPLIT.npy), with the labels, uint8 [N], in the same name ending in -labels.npy;\nor .parquet, .csv or .jsonl, one row per image: id, label, code")
		batch = fs.Int("batch", 1000, "images per ONNX Runtime call")
		calls = fs.Int("calls", 0, "ONNX Runtime calls in flight at once (0: on the CPU one per core, each on one thread\nunless --threads says otherwise; 1 on a GPU)")
		quiet = fs.Bool("quiet", false, "no progress bar")
	)
	var data dataFlags
	data.register(fs, "")
	var rt ortFlags
	rt.register(fs)
	return func(ctx context.Context, args []string) error {
		if len(args) != 1 {
			return usageError("want one run folder")
		}
		dir := args[0]
		var splits []string
		switch *split {
		case dataset.Train, dataset.Test:
			splits = []string{*split}
		case "all":
			splits = []string{dataset.Train, dataset.Test}
		default:
			return usageError("--split %q: want train, test or all", *split)
		}
		if *batch < 1 {
			return usageError("--batch %d: want at least 1", *batch)
		}
		if *calls < 0 {
			return usageError("--calls %d: want 0 or more", *calls)
		}
		codesPath := *out
		if codesPath == "" {
			codesPath = filepath.Join(dir, "codes-"+*split+".npy")
		}
		table := codetable.FormatOf(codesPath)
		if table == "" && !strings.HasSuffix(codesPath, ".npy") {
			return usageError("--out %s: want a .npy, .parquet, .csv or .jsonl file", codesPath)
		}
		labelsPath := strings.TrimSuffix(codesPath, ".npy") + "-labels.npy"
		if err := run.CheckWritable(filepath.Dir(codesPath)); err != nil {
			return err
		}
		opts, err := rt.options()
		if err != nil {
			return err
		}
		inFlight, opts := encodeCalls(*calls, opts)
		model, err := openHalf(dir, exporter.Encoder, opts)
		if err != nil {
			return err
		}
		defer model.Close()
		data.useModel(model)
		var streams []*dataset.Stream
		n := 0
		for _, sp := range splits {
			st, err := data.stream(ctx, sp)
			if err != nil {
				return err
			}
			st.SkipMD5() // the codes do not record it; CRC-32 still tells MNIST from Fashion-MNIST
			if !slices.Equal(st.Shape(), model.ImageShape()) {
				return fmt.Errorf("%s %s has images of %v, the encoder takes %v", data.label(), sp, st.Shape(), model.ImageShape())
			}
			streams = append(streams, st)
			n += st.Len()
		}
		bar := newProgress(n, "encoding "+data.label()+" "+*split, *quiet)
		enc := &encoder{model: model, batch: *batch, calls: inFlight, bar: bar, start: time.Now()}
		if table != "" {
			return enc.table(ctx, streams, codesPath, table)
		}
		return enc.npy(ctx, streams, n, codesPath, labelsPath)
	}
}

// encodeCalls returns how many calls `latent encode` keeps in the model at
// once, given --calls, and the options to open it with: calls when it is
// set; else on the CPU one per core, each on one thread (IntraOpThreads 0
// becomes 1) or, with --threads T, one per T cores; on a GPU (cuda or
// auto), 1.
func encodeCalls(calls int, opts inference.Options) (int, inference.Options) {
	if calls > 0 {
		return calls, opts
	}
	if opts.Device != inference.CPU {
		return 1, opts
	}
	if opts.IntraOpThreads == 0 {
		opts.IntraOpThreads = 1
	}
	return max(1, runtime.NumCPU()/opts.IntraOpThreads), opts
}

// An encoder runs the images of streams through the model, a batch at a
// time, and hands the codes to a writer, in order. It is a bounded
// pipeline: the streams read and decode the next batch while up to calls
// batches are in the model at once (on the CPU, one call per core with one
// thread each keeps both cores busier than one call on two threads, whose
// operators wait for each other), and the oldest finished batch is
// written. It keeps the time spent in each stage.
type encoder struct {
	model *inference.Model
	batch int
	calls int // batches in the model at once; at least 1
	bar   *progress.Meter

	start     time.Time
	inModel   time.Duration // the calls' durations, summed
	wait      time.Duration // waiting for images to be read and decoded
	modelWait time.Duration // waiting for the model
	write     time.Duration
	n         int
}

// An encodeJob is one batch on its way through the model: the images as
// floats, the batch's labels and IDs (copied: the stream reuses its Set),
// and the codes (inference.Model.EncodeInto). Its buffers are reused from
// batch to batch.
type encodeJob struct {
	off   int
	set   dataset.Set // N, Split, Labels and IDs; no Pixels
	in    []float32
	codes []float32
	took  time.Duration
	err   error
	done  chan struct{}
}

// run calls write with each batch's codes, N×b, and the batch itself, in
// the streams' order.
func (e *encoder) run(parent context.Context, streams []*dataset.Stream, write func(off int, b *dataset.Set, codes []float32) error) error {
	interrupted := func() error { return fmt.Errorf("interrupted: %w; nothing was written", parent.Err()) }
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	calls := max(1, e.calls)
	size := e.model.Bottleneck()
	free := make(chan *encodeJob, calls)
	for range calls {
		free <- &encodeJob{done: make(chan struct{}, 1)}
	}
	var queue []*encodeJob // in the model, oldest first
	// finish waits for the oldest batch and writes its codes.
	finish := func() error {
		j := queue[0]
		queue = queue[1:]
		t0 := time.Now()
		<-j.done
		defer func() { free <- j }()
		t1 := time.Now()
		e.modelWait += t1.Sub(t0)
		e.inModel += j.took
		if j.err != nil {
			if parent.Err() != nil {
				return interrupted()
			}
			return fmt.Errorf("encoding %s images %d to %d: %w", j.set.Split, j.off, j.off+j.set.N-1, j.err)
		}
		err := write(j.off, &j.set, j.codes)
		e.write += time.Since(t1)
		e.n += j.set.N
		e.bar.Add(j.set.N)
		return err
	}
	// drain waits for the batches still in the model, after an error.
	drain := func() {
		cancel()
		for _, j := range queue {
			<-j.done
		}
		queue = nil
	}
	for _, st := range streams {
		last := time.Now()
		err := st.Scan(ctx, e.batch, func(off int, b *dataset.Set) error {
			e.wait += time.Since(last)
			defer func() { last = time.Now() }()
			if len(queue) == calls {
				if err := finish(); err != nil {
					return err
				}
			}
			j := <-free
			j.off = off
			j.set = dataset.Set{Name: b.Name, Split: b.Split, N: b.N, Rows: b.Rows, Cols: b.Cols, Channels: b.Channels,
				Classes: b.Classes, Labels: append(j.set.Labels[:0], b.Labels...)}
			if b.IDs != nil {
				j.set.IDs = append(j.set.IDs[:0], b.IDs...)
			}
			j.in = b.Floats(j.in, 0, b.N)
			queue = append(queue, j)
			j.codes = slices.Grow(j.codes[:0], j.set.N*size)[:j.set.N*size]
			go func() {
				t := time.Now()
				j.err = e.model.EncodeInto(ctx, j.codes, j.in, j.set.N)
				j.took = time.Since(t)
				j.done <- struct{}{}
			}()
			return nil
		})
		reportSkipped(st)
		if err != nil {
			drain()
			if parent.Err() != nil {
				return interrupted()
			}
			return err
		}
	}
	for len(queue) > 0 {
		if err := finish(); err != nil {
			drain()
			return err
		}
	}
	e.bar.Finish()
	return nil
}

// report writes the times on stderr, with each stage's rate: the time the
// pipeline waited for images to be read and decoded and for the model
// (what it could not hide), the calls' own time (summed over the calls in
// flight at once), and the writing.
func (e *encoder) report() {
	rate := func(d time.Duration) string {
		if d <= 0 {
			return "-"
		}
		return fmt.Sprintf("%.0f images/s", float64(e.n)/d.Seconds())
	}
	total := time.Since(e.start)
	fmt.Fprintf(os.Stderr, "%d images in %s (%s): model calls %s (%d at a time, %s each), waiting for reading and decoding %s, for the model %s, writing %s (%s)\n",
		e.n, total.Round(time.Millisecond), rate(total), e.inModel.Round(time.Millisecond), max(1, e.calls), rate(e.inModel),
		e.wait.Round(time.Millisecond), e.modelWait.Round(time.Millisecond), e.write.Round(time.Millisecond), rate(e.write))
}

// npy writes the codes, float32 [N,b], to codesPath and the labels, uint8
// [N], to labelsPath, both in full before either is moved into place, so
// that a failure or a full disk leaves the old pair, if any. n is the
// number of images listed: the header is written for it and rewritten in
// place when skipped images make the count smaller.
func (e *encoder) npy(ctx context.Context, streams []*dataset.Stream, n int, codesPath, labelsPath string) error {
	b := e.model.Bottleneck()
	labels := make([]uint8, 0, n)
	var header bytes.Buffer
	if err := npyarray.WriteHeader(&header, npyarray.Float32, []int{n, b}); err != nil {
		return err
	}
	codesFile, err := atomicfile.Prepare(codesPath, 0o644, func(f *os.File) error {
		w := bufio.NewWriterSize(f, 1<<20)
		w.Write(header.Bytes())
		err := e.run(ctx, streams, func(_ int, set *dataset.Set, codes []float32) error {
			labels = append(labels, set.Labels...)
			return npyarray.WriteFloat32s(w, codes)
		})
		if err != nil {
			return err
		}
		if err := w.Flush(); err != nil {
			return err
		}
		if len(labels) == n {
			return nil
		}
		var fixed bytes.Buffer
		if err := npyarray.WriteHeaderSize(&fixed, npyarray.Float32, []int{len(labels), b}, header.Len()); err != nil {
			return err
		}
		_, err = f.WriteAt(fixed.Bytes(), 0)
		return err
	})
	if err != nil {
		return err
	}
	defer codesFile.Discard()
	var buf bytes.Buffer
	if err := npyarray.WriteHeader(&buf, npyarray.Uint8, []int{len(labels)}); err != nil {
		return fmt.Errorf("write %s: %w", labelsPath, err)
	}
	buf.Write(labels)
	labelsFile, err := atomicfile.PrepareBytes(labelsPath, buf.Bytes(), 0o644)
	if err != nil {
		return err
	}
	defer labelsFile.Discard()
	if err := codesFile.Commit(); err != nil {
		return err
	}
	if err := labelsFile.Commit(); err != nil {
		return err
	}
	e.report()
	fmt.Printf("%s\tfloat32 [%d,%d]\n%s\tuint8 [%d]\n", codesPath, len(labels), b, labelsPath, len(labels))
	return nil
}

// table encodes the streams into a table of codes (package codetable) at
// path, one row per image with its id and label, written atomically and
// as the codes come.
func (e *encoder) table(ctx context.Context, streams []*dataset.Stream, path, format string) error {
	b := e.model.Bottleneck()
	labelled := false
	for _, st := range streams {
		labelled = labelled || st.Labelled()
	}
	err := atomicfile.Write(path, 0o644, func(f *os.File) error {
		w, err := codetable.Create(f, format, b, labelled)
		if err != nil {
			return err
		}
		rows := make([]codetable.Row, 0, e.batch)
		err = e.run(ctx, streams, func(off int, set *dataset.Set, codes []float32) error {
			rows = rows[:0]
			for i := range set.N {
				rows = append(rows, codetable.Row{ID: set.ID(i, off), Label: int(set.Labels[i]), Code: codes[i*b : (i+1)*b]})
			}
			return w.Write(rows...)
		})
		if err != nil {
			return err
		}
		return w.Close()
	})
	if err != nil {
		return err
	}
	e.report()
	fmt.Printf("%s\t%s, %d rows: id, %scode of %d values\n", path, format, e.n, map[bool]string{true: "label, ", false: ""}[labelled], b)
	return nil
}

// openHalf opens RUN/encoder.onnx or RUN/decoder.onnx alone.
func openHalf(dir, part string, opts inference.Options) (*inference.Model, error) {
	if err := run.Folder(dir).Exists(); err != nil {
		return nil, err
	}
	name := onnxmeta.EncoderFile
	if part == exporter.Decoder {
		name = onnxmeta.DecoderFile
	}
	path := filepath.Join(dir, name)
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("%s: %w: run 'latent export %s' first", path, errors.Unwrap(err), dir)
	}
	if part == exporter.Encoder {
		return inference.Open(path, "", opts)
	}
	return inference.Open("", path, opts)
}

func imageSize(m *inference.Model) int {
	n := 1
	for _, d := range m.ImageShape() {
		n *= d
	}
	return n
}
