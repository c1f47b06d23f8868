// Command latent-beam batch-encodes a data set with a run's encoder as an
// Apache Beam pipeline (package pipeline):
//
//	latent-beam encode RUN --data PATH|GLOB --out PREFIX [--format parquet|jsonl|csv]
//	    [--split test|train|all] [--runner prism|universal|dataflow|flink|spark]
//	    [--endpoint HOST:PORT] [--shard-size N] [--threads N]
//
// The default runner, prism, runs the pipeline in this process. With
// --runner universal --endpoint HOST:PORT it is submitted to a job server
// (a Prism job server, Flink's or Spark's); --runner dataflow takes
// Dataflow's flags (--project, --region, --staging_location,
// --worker_harness_container_image). Every Beam flag is accepted; run
// latent-beam --help for them all.
//
// It is a separate binary from latent so that Beam's runners and their
// libraries stay out of the main command: see the README.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/x/beamx"

	"github.com/latent-ai/latent/dataset"
	"github.com/latent-ai/latent/exporter"
	"github.com/latent-ai/latent/onnxmeta"
	"github.com/latent-ai/latent/pipeline"
)

var (
	data         = flag.String("data", "", "the images: a folder of IDX files (default: the run's data set), a folder of PNG/JPEG files, a glob, an .npy or a Parquet file; every worker must read it at this path")
	datasetName  = flag.String("dataset", "", "data set of IDX files: mnist or fashion-mnist (default: the run's)")
	format       = flag.String("format", "", "kind of --data for your own images: folder, glob, npy or parquet (default: detected)")
	fit          = flag.String("fit", "", "how pictures fit the input: stretch, crop or pad (default: the run's)")
	testFraction = flag.Float64("test-fraction", 0, "share of your images held out as the test split (default: the run's, else 0.1)")
	strict       = flag.Bool("strict", false, "stop at the first unreadable picture instead of skipping it")
	split        = flag.String("split", dataset.Test, "which images: train, test or all")
	out          = flag.String("out", "", "output prefix: PREFIX-SPLIT-00000-of-00016.FORMAT shards and PREFIX-manifest.json (required)")
	outFormat    = flag.String("out-format", "parquet", "shards' format: parquet, jsonl or csv (id, label, code a row), or npy (codes, -labels.npy, -ids.txt)")
	shardSize    = flag.Int("shard-size", 10000, "images per shard, the unit of work")
	shards       = flag.Int("shards", 0, "number of shards instead of --shard-size: at least the runner's workers")
	verbose      = flag.Bool("verbose", false, "Beam's and the runner's own logs on stderr, not only warnings and errors")
	batch        = flag.Int("batch", 1000, "images per ONNX Runtime call")
	threads      = flag.Int("threads", 0, "ONNX Runtime threads per operator in each worker (0: one per core)")
	model        = flag.String("model", "", "the encoder, if not RUN/encoder.onnx: a local path or a Beam filesystem URL (gs://...) the workers can read")
	failFirst    = flag.Float64("fail-first", 0, "tests only: fail each shard's first attempt with this probability")
)

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help") {
		usage(os.Stdout)
		flag.CommandLine.SetOutput(os.Stdout)
		flag.PrintDefaults()
		return
	}
	if len(os.Args) < 3 || os.Args[1] != "encode" || strings.HasPrefix(os.Args[2], "-") {
		// A worker started by a runner gets Beam's flags only.
		if len(os.Args) > 1 && strings.HasPrefix(os.Args[1], "-") {
			flag.Parse()
			beam.Init()
			fmt.Fprintln(os.Stderr, "latent-beam: want: latent-beam encode RUN --data PATH --out PREFIX (latent-beam --help)")
			os.Exit(2)
		}
		usage(os.Stderr)
		os.Exit(2)
	}
	run := os.Args[2]
	if err := flag.CommandLine.Parse(os.Args[3:]); err != nil {
		os.Exit(2)
	}
	beam.Init()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := encode(ctx, run); err != nil {
		fmt.Fprintln(os.Stderr, "latent-beam:", err)
		os.Exit(1)
	}
}

func usage(w *os.File) {
	fmt.Fprintln(w, "Usage: latent-beam encode RUN --data PATH|GLOB --out PREFIX [flags]")
	fmt.Fprintln(w, "\nencode the images with RUN/encoder.onnx as an Apache Beam pipeline: sharded files of id, label, code, and a manifest")
	fmt.Fprintln(w, "\nFlags (with Beam's own: --runner, --endpoint, --environment_type, --project, ...):")
}

// encode plans the job from the run's recorded data and the flags, runs
// the pipeline, and prints its counters.
func encode(ctx context.Context, run string) error {
	if *out == "" {
		return fmt.Errorf("--out PREFIX is required")
	}
	if !*verbose {
		slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	}
	cfg := pipeline.Config{Model: *model, Out: *out, Format: *outFormat, ShardSize: *shardSize, Shards: *shards, Batch: *batch, Threads: *threads, FailFirst: *failFirst}
	if cfg.Model == "" {
		cfg.Model = filepath.Join(run, onnxmeta.EncoderFile)
	}
	if !strings.Contains(cfg.Model, "://") {
		abs, err := filepath.Abs(cfg.Model)
		if err != nil {
			return err
		}
		cfg.Model = abs
		if _, err := os.Stat(abs); err != nil {
			return fmt.Errorf("%w: run 'latent export %s' first", err, run)
		}
	}
	md, err := exporter.ReadMetadata(cfg.Model)
	if err != nil && !strings.Contains(cfg.Model, "://") {
		return fmt.Errorf("%s: %w", cfg.Model, err)
	}
	switch *split {
	case dataset.Train, dataset.Test:
		cfg.Splits = []string{*split}
	case "all":
		cfg.Splits = []string{dataset.Train, dataset.Test}
	default:
		return fmt.Errorf("--split %q: want train, test or all", *split)
	}
	src, err := source(md)
	if err != nil {
		return err
	}
	cfg.Source = src
	plan, err := pipeline.Plan(cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "latent-beam: %d shards of up to %d images, %s -> %s-*.%s\n", len(plan), plan[0].Hi-plan[0].Lo, strings.Join(cfg.Splits, "+"), cfg.Out, cfg.Format)
	os.Remove(cfg.ManifestPath()) // an earlier run's manifest must not describe this one's shards
	p, s := beam.NewPipelineWithRoot()
	pipeline.Build(s, cfg, plan)
	start := time.Now()
	res, err := beamx.RunWithMetrics(ctx, p)
	if err != nil {
		return fmt.Errorf("the pipeline failed (no manifest was written; the shards written are whole, and a rerun rewrites them): %w", err)
	}
	if res != nil {
		for _, c := range res.Metrics().AllMetrics().Counters() {
			if c.Key.Namespace == "latent" {
				fmt.Fprintf(os.Stderr, "latent-beam: %s %d\n", c.Key.Name, c.Result())
			}
		}
	}
	m, err := pipeline.ReadManifest(ctx, cfg.Out)
	if err != nil {
		return fmt.Errorf("the pipeline ended without a manifest: %w", err)
	}
	secs := time.Since(start).Seconds()
	fmt.Printf("%s\t%d images in %d shards, %.0f images/s\n", cfg.ManifestPath(), m.Images, len(m.Shards), float64(m.Images)/secs)
	return nil
}

// source returns the job's source: --data and the other data flags, else
// what the encoder's metadata recorded of the run's data.
func source(md *onnxmeta.Metadata) (pipeline.Source, error) {
	var src pipeline.Source
	input := []int{1, dataset.Side, dataset.Side}
	if md != nil {
		input = md.Arch.Input
		if rec := md.Training.Source; rec != nil {
			src = pipeline.Source{Path: rec.Path, Format: rec.Format, Fit: rec.Fit, TestFraction: rec.TestFraction, Seed: rec.Seed}
		} else {
			src.Dataset = md.Training.Dataset
		}
	}
	if *datasetName != "" {
		src.Dataset = *datasetName
	}
	if src.Dataset == "" && src.Path == "" {
		src.Dataset = dataset.MNIST
	}
	if *data != "" {
		abs, err := filepath.Abs(*data)
		if err != nil {
			return src, err
		}
		if dataset.HoldsIDX(abs) {
			src.Path, src.Dir = "", abs
			if src.Dataset == "" {
				src.Dataset = dataset.MNIST
			}
		} else {
			src.Path, src.Dir, src.Dataset = abs, "", ""
			src.Format = *format
		}
	} else if src.Path == "" {
		src.Dir = dataset.Dir(src.Dataset, "")
	}
	if src.Path != "" {
		src.Input = input
		if *fit != "" {
			src.Fit = *fit
		}
		if *testFraction != 0 {
			src.TestFraction = *testFraction
		}
		src.Strict = *strict
	}
	return src, nil
}
