package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/latent-ai/latent/dataset"
	"github.com/latent-ai/latent/inference"
	"github.com/latent-ai/latent/internal/progress"
	"github.com/latent-ai/latent/run"
)

func init() {
	register(&command{
		name:  "export",
		args:  "RUN",
		short: "export RUN/model.safetensors as RUN/encoder.onnx and RUN/decoder.onnx, with the latent statistics of the training set",
		setup: setupExport,
	})
}

func setupExport(fs *flag.FlagSet) func(context.Context, []string) error {
	var (
		noStats = fs.Bool("no-stats", false, "skip encoding the training set: no latent statistics, so no sampling from the fitted Gaussian")
		batch   = fs.Int("batch", 1000, "images per ONNX Runtime call while encoding the training set")
		quiet   = fs.Bool("quiet", false, "no progress bar")
	)
	var data dataFlags
	data.register(fs, "")
	var rt ortFlags
	rt.register(fs)
	return func(ctx context.Context, args []string) error {
		if len(args) != 1 {
			return usageError("want one run folder")
		}
		if *batch < 1 {
			return usageError("--batch %d: want at least 1", *batch)
		}
		opts, err := rt.options()
		if err != nil {
			return err
		}
		dir := run.Folder(args[0])
		m, err := dir.Model()
		if err != nil {
			return err
		}
		eopts := run.ExportOptions{Inference: opts, Batch: *batch}
		var bar *progress.Meter
		if !*noStats {
			data.useRun(m.Meta, m.Arch.Input)
			if eopts.Train, err = data.load(ctx, dataset.Train); err != nil {
				return err
			}
			bar = newProgress(eopts.Train.N, "encoding "+data.label()+" train", *quiet)
			eopts.Progress = func(done, total int) { bar.Set(done) }
		}
		paths, stats, err := dir.Export(ctx, eopts)
		if err != nil {
			return err
		}
		if stats != nil {
			bar.Finish()
			total := 0.0
			for _, l := range stats.Eigenvalues {
				total += max(l, 0)
			}
			var top []string
			for k := 0; k < min(3, len(stats.Eigenvalues)); k++ {
				top = append(top, fmt.Sprintf("%.3g (%.0f%%)", stats.Eigenvalues[k], 100*max(stats.Eigenvalues[k], 0)/total))
			}
			fmt.Fprintf(os.Stderr, "latent variance %.4g; largest principal variances %s\n", total, strings.Join(top, ", "))
		}
		fmt.Println(strings.Join(paths, "\n"))
		return nil
	}
}

// ortFlags are the flags of the commands that run ONNX Runtime.
type ortFlags struct {
	device     string
	threads    int
	cudaDevice int
	cudaMemory int64
	convSearch string
}

func (o *ortFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&o.device, "device", inference.CPU, "where ONNX Runtime runs: cpu, cuda, or auto (cuda when it works, else cpu);\ncuda and auto load the GPU build that make setup-cuda installs")
	fs.IntVar(&o.threads, "threads", 0, "ONNX Runtime threads per operator (0: one per core)")
	fs.IntVar(&o.cudaDevice, "cuda-device", 0, "the GPU to run on, for --device cuda or auto")
	fs.Int64Var(&o.cudaMemory, "cuda-memory", 0, "cap on the CUDA provider's memory arena, in MiB (0: none)")
	fs.StringVar(&o.convSearch, "cudnn-search", "exhaustive", "how cuDNN picks its convolution algorithms: exhaustive, heuristic or default")
}

// options returns the inference options the flags ask for. Notes from
// inference (such as a fallback to the CPU) go to stderr.
func (o *ortFlags) options() (inference.Options, error) {
	switch o.device {
	case inference.CPU, inference.CUDA, inference.Auto:
	default:
		return inference.Options{}, usageError("--device %q: want cpu, cuda or auto", o.device)
	}
	if o.threads < 0 {
		return inference.Options{}, usageError("--threads %d: want 0 or more", o.threads)
	}
	if o.cudaDevice < 0 || o.cudaMemory < 0 {
		return inference.Options{}, usageError("--cuda-device %d, --cuda-memory %d: want 0 or more", o.cudaDevice, o.cudaMemory)
	}
	switch o.convSearch {
	case "exhaustive", "heuristic", "default":
	default:
		return inference.Options{}, usageError("--cudnn-search %q: want exhaustive, heuristic or default", o.convSearch)
	}
	return inference.Options{
		Device:          o.device,
		IntraOpThreads:  o.threads,
		CUDADevice:      o.cudaDevice,
		CUDAMemoryLimit: o.cudaMemory << 20,
		CUDAConvSearch:  o.convSearch,
		Logf: func(format string, args ...any) {
			fmt.Fprintf(os.Stderr, format+"\n", args...)
		},
	}, nil
}

// newProgress returns a meter of n images on stderr: a redrawn line on a
// terminal, plain lines in a log, nothing when quiet.
func newProgress(n int, what string, quiet bool) *progress.Meter {
	if quiet {
		return nil
	}
	return progress.New(os.Stderr, n, what, "images")
}
