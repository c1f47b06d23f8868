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
	"slices"
	"strconv"
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
		model, err := openHalf(dir, exporter.Encoder, opts)
		if err != nil {
			return err
		}
		defer model.Close()
		data.useModel(model)

		var sets []*dataset.Set
		n := 0
		var times encodeTimes
		start := time.Now()
		for _, s := range splits {
			set, err := data.load(ctx, s)
			if err != nil {
				return err
			}
			if set.N > 0 && len(set.Images) != set.N*imageSize(model) {
				return fmt.Errorf("%s %s has images of %d values, the encoder takes %v", data.label(), s, len(set.Images)/set.N, model.ImageShape())
			}
			sets = append(sets, set)
			n += set.N
		}

		times.read = time.Since(start)
		b := model.Bottleneck()
		labels := make([]uint8, 0, n)
		bar := newProgress(n, "encoding "+data.label()+" "+*split, *quiet)
		if table != "" {
			return encodeTable(ctx, model, sets, codesPath, table, *batch, bar, &times)
		}
		// The codes and the labels are both written in full before either
		// is moved into place: a full disk leaves the old pair, if any.
		codesFile, err := atomicfile.Prepare(codesPath, 0o644, func(f *os.File) error {
			w := bufio.NewWriterSize(f, 1<<20)
			if err := npyarray.WriteHeader(w, npyarray.Float32, []int{n, b}); err != nil {
				return err
			}
			for _, set := range sets {
				size := imageSize(model)
				for off := 0; off < set.N; off += *batch {
					if err := ctx.Err(); err != nil {
						return fmt.Errorf("interrupted: %w; nothing was written", err)
					}
					k := min(*batch, set.N-off)
					t0 := time.Now()
					codes, err := model.EncodeContext(ctx, set.Images[off*size:(off+k)*size], k)
					if err != nil {
						return fmt.Errorf("encoding %s images %d to %d: %w", set.Split, off, off+k-1, err)
					}
					t1 := time.Now()
					if err := npyarray.WriteFloat32s(w, codes); err != nil {
						return err
					}
					times.model += t1.Sub(t0)
					times.write += time.Since(t1)
					bar.Add(k)
				}
				labels = append(labels, set.Labels...)
			}
			return w.Flush()
		})
		if err != nil {
			return err
		}
		defer codesFile.Discard()
		bar.Finish()
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
		times.report(n)
		fmt.Printf("%s\tfloat32 [%d,%d]\n%s\tuint8 [%d]\n", codesPath, n, b, labelsPath, n)
		return nil
	}
}

// encodeTimes are where encode spent its time: reading and decoding the
// images, running the model, writing the codes.
type encodeTimes struct{ read, model, write time.Duration }

// report writes the times of n images on stderr, with each stage's rate.
func (t encodeTimes) report(n int) {
	rate := func(d time.Duration) string {
		if d <= 0 {
			return "-"
		}
		return fmt.Sprintf("%.0f images/s", float64(n)/d.Seconds())
	}
	fmt.Fprintf(os.Stderr, "times: reading and decoding %s (%s), model %s (%s), writing %s (%s)\n",
		t.read.Round(time.Millisecond), rate(t.read), t.model.Round(time.Millisecond), rate(t.model),
		t.write.Round(time.Millisecond), rate(t.write))
}

// encodeTable encodes the sets into a table of codes (package codetable)
// at path, one row per image with its id and label, written atomically and
// as the codes come.
func encodeTable(ctx context.Context, model *inference.Model, sets []*dataset.Set, path, format string, batch int, bar *progress.Meter, times *encodeTimes) error {
	b, size := model.Bottleneck(), imageSize(model)
	labelled := false
	for _, set := range sets {
		labelled = labelled || set.Files != nil || set.Classes != nil || slices.ContainsFunc(set.Labels, func(l uint8) bool { return l != 0 })
	}
	n := 0
	err := atomicfile.Write(path, 0o644, func(f *os.File) error {
		w, err := codetable.Create(f, format, b, labelled)
		if err != nil {
			return err
		}
		rows := make([]codetable.Row, 0, batch)
		for _, set := range sets {
			for off := 0; off < set.N; off += batch {
				k := min(batch, set.N-off)
				t0 := time.Now()
				codes, err := model.EncodeContext(ctx, set.Images[off*size:(off+k)*size], k)
				if err != nil {
					if ctx.Err() != nil {
						return fmt.Errorf("interrupted: %w; nothing was written", ctx.Err())
					}
					return fmt.Errorf("encoding %s images %d to %d: %w", set.Split, off, off+k-1, err)
				}
				rows = rows[:0]
				for i := range k {
					id := set.Split + "/" + strconv.Itoa(off+i)
					if set.IDs != nil {
						id = set.IDs[off+i]
					}
					rows = append(rows, codetable.Row{ID: id, Label: int(set.Labels[off+i]), Code: codes[i*b : (i+1)*b]})
				}
				t1 := time.Now()
				if err := w.Write(rows...); err != nil {
					return err
				}
				times.model += t1.Sub(t0)
				times.write += time.Since(t1)
				n += k
				bar.Add(k)
			}
		}
		return w.Close()
	})
	if err != nil {
		return err
	}
	bar.Finish()
	times.report(n)
	fmt.Printf("%s\t%s, %d rows: id, %scode of %d values\n", path, format, n, map[bool]string{true: "label, ", false: ""}[labelled], b)
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
