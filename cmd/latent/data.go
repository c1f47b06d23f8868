package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/latent-ai/latent/checkpoint"
	"github.com/latent-ai/latent/dataset"
	"github.com/latent-ai/latent/imageprep"
	"github.com/latent-ai/latent/inference"
	"github.com/latent-ai/latent/trainer"
)

// dataFlags are the flags that choose the data: MNIST or Fashion-MNIST's
// IDX files, or a source of the user's own images (dataset.Open).
type dataFlags struct {
	name         string
	dir          string
	format       string
	fit          string
	testFraction float64
	strict       bool

	// input is the model's image shape, which the command sets before
	// loading; source is the run's recorded source, read when no --data
	// is given.
	input  []int
	source *checkpoint.Source

	openedFormat string // the own source's format, once opened
	seed         uint64
}

func (d *dataFlags) register(fs *flag.FlagSet, defaultName string) {
	fs.StringVar(&d.name, "dataset", defaultName, "data set of IDX files: mnist or fashion-mnist")
	fs.StringVar(&d.dir, "data", "", "the data: a folder of IDX files (default: mnist $LATENT_MNIST, else $LATENT_DATA, else ./data/mnist;\n"+
		"fashion-mnist $LATENT_FASHION_MNIST, else /usr/share/datasets/fashion-mnist), or your own images:\n"+
		"a folder of PNG/JPEG files (ImageFolder layout: subfolders are classes), a glob, an .npy array,\n"+
		"or a Parquet file in the Hugging Face image layout")
	fs.StringVar(&d.format, "format", "", "kind of --data: folder, glob, npy or parquet (default: detected)")
	fs.StringVar(&d.fit, "fit", imageprep.FitStretch, "how pictures of another aspect ratio fit the input: stretch, crop or pad")
	fs.Float64Var(&d.testFraction, "test-fraction", 0.1, "share of your images held out as the test split when the source has none (seeded)")
	fs.BoolVar(&d.strict, "strict", false, "stop at the first unreadable picture instead of skipping it")
}

// useRun takes what a run recorded: its own source when --data is not
// given, its data set's name when --dataset is not, and its input shape.
func (d *dataFlags) useRun(meta checkpoint.Meta, input []int) {
	d.source, d.input = meta.Source, input
	if meta.Source != nil {
		d.seed = meta.Source.Seed
	} else if d.name == "" {
		d.name = meta.Dataset
	}
	if d.name == "" {
		d.name = dataset.MNIST
	}
}

// useModel takes what an exported model's metadata recorded (see useRun),
// or, for files without metadata, only its input shape.
func (d *dataFlags) useModel(m *inference.Model) {
	if md := m.Metadata(); md != nil {
		d.useRun(md.Training, m.ImageShape())
		return
	}
	d.input = m.ImageShape()
	if d.name == "" {
		d.name = dataset.MNIST
	}
}

// own reports whether the data is the user's own images rather than IDX
// files: --format is given, or --data names a glob, an .npy or .parquet
// file, or a
// folder of pictures that holds no IDX files; or no --data is given and the
// run recorded a source. Any other --data (a missing or empty folder) is a
// folder of IDX files, to download into when the data set allows it.
func (d *dataFlags) own() bool {
	if d.dir == "" {
		return d.source != nil
	}
	switch ext := strings.ToLower(filepath.Ext(d.dir)); {
	case d.format != "", strings.ContainsAny(d.dir, "*?["), ext == ".npy", ext == ".parquet":
		return true
	}
	return !dataset.HoldsIDX(d.dir) && holdsPictures(d.dir)
}

// holdsPictures reports whether the folder dir holds a PNG or JPEG file, at
// any depth.
func holdsPictures(dir string) bool {
	found := errors.New("found")
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			switch strings.ToLower(filepath.Ext(p)) {
			case ".png", ".jpg", ".jpeg":
				return found
			}
		}
		return nil
	})
	return err == found
}

// label names the data for messages.
func (d *dataFlags) label() string {
	if d.own() {
		if d.dir != "" {
			return filepath.Base(d.dir)
		}
		return filepath.Base(d.source.Path)
	}
	return d.name
}

// sourceRecord returns the record of the own source that the run reads,
// for its checkpoint, or nil for IDX data.
func (d *dataFlags) sourceRecord() *checkpoint.Source {
	if !d.own() {
		return nil
	}
	if d.dir == "" {
		return d.source
	}
	abs, err := filepath.Abs(d.dir)
	if err != nil {
		abs = d.dir
	}
	return &checkpoint.Source{Path: abs, Format: d.openedFormat, Fit: d.fit, TestFraction: d.testFraction, Seed: d.seed}
}

// load reads one split ("train" or "test") in full (see stream), with the
// skipped files listed on stderr.
func (d *dataFlags) load(ctx context.Context, split string) (*dataset.Set, error) {
	st, err := d.stream(ctx, split)
	if err != nil {
		return nil, err
	}
	set, err := st.ReadAll(ctx)
	reportSkipped(st)
	return set, err
}

// reportSkipped lists on stderr the files that the last scan of st
// skipped, with their count.
func reportSkipped(st *dataset.Stream) {
	skipped := st.Skipped()
	for _, s := range skipped {
		fmt.Fprintf(os.Stderr, "skipped %s: %v\n", s.Path, s.Err)
	}
	if n := len(skipped); n > 0 {
		fmt.Fprintf(os.Stderr, "skipped %d unreadable %s of %d in the %s split (--strict stops at the first)\n",
			n, map[bool]string{true: "file", false: "files"}[n == 1], st.Len(), st.Split())
	}
}

// stream opens one split ("train" or "test") to read as it is used: of
// the IDX data set, downloading missing files first when the data set can
// be downloaded, or of the own source.
func (d *dataFlags) stream(ctx context.Context, split string) (*dataset.Stream, error) {
	if d.own() {
		o := dataset.OpenOptions{Format: d.format, Input: d.input, Fit: d.fit, TestFraction: d.testFraction, Seed: d.seed, Strict: d.strict}
		path := d.dir
		if path == "" {
			s := d.source
			path, o.Format, o.Fit, o.TestFraction, o.Seed = s.Path, s.Format, s.Fit, s.TestFraction, s.Seed
		}
		st, err := dataset.OpenSplit(path, o, split)
		if err != nil {
			return nil, err
		}
		d.openedFormat = st.Format()
		return st, nil
	}
	if d.input != nil && (len(d.input) != 3 || d.input[0] != 1 || d.input[1] != dataset.Side || d.input[2] != dataset.Side) {
		return nil, fmt.Errorf("%s's IDX images are 1×%d×%d, the model takes %v: train on your own images with --data, or use --input 1x28x28",
			d.name, dataset.Side, dataset.Side, d.input)
	}
	dir := dataset.Dir(d.name, d.dir)
	if err := dataset.Ensure(ctx, d.name, dir, os.Stderr); err != nil {
		return nil, err
	}
	st, err := dataset.OpenIDX(d.name, dir, split)
	if err != nil {
		return nil, fmt.Errorf("load %s %s from %s: %w", d.name, split, dir, err)
	}
	return st, nil
}

// parseShape parses an input shape "CxHxW", such as 1x28x28 or 3x32x32.
func parseShape(s string) ([]int, error) {
	parts := strings.Split(strings.ToLower(s), "x")
	if len(parts) != 3 {
		return nil, fmt.Errorf("input %q: want CxHxW, such as 1x28x28 or 3x32x32", s)
	}
	out := make([]int, 3)
	for i, p := range parts {
		v, err := strconv.Atoi(p)
		if err != nil || v < 1 {
			return nil, fmt.Errorf("input %q: want CxHxW of positive numbers, such as 3x32x32", s)
		}
		out[i] = v
	}
	if out[0] != 1 && out[0] != 3 {
		return nil, fmt.Errorf("input %q: want 1 or 3 channels", s)
	}
	return out, nil
}

// asData returns the set as the trainer takes it, with its files.
func asData(s *dataset.Set) trainer.Data {
	d := trainer.Data{Pixels: s.Pixels, N: s.N}
	for _, f := range s.Files {
		d.Files = append(d.Files, checkpoint.DataFile{Split: s.Split, Path: f.Path, MD5: f.MD5})
	}
	return d
}
