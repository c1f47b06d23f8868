package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/latent-ai/latent/dataset"
	"github.com/latent-ai/latent/exporter"
	"github.com/latent-ai/latent/internal/progress"
	"github.com/latent-ai/latent/run"
)

func init() {
	register(&command{
		name:  "eval",
		args:  "RUN",
		short: "print the quality metrics of an exported model as JSON (test MSE, PSNR, kNN, linear probe, k-means, sample precision and recall)",
		setup: setupEval,
	})
	register(&command{
		name:  "report",
		args:  "RUN",
		short: "write RUN/report/index.html: settings, metrics and the notebook's figures",
		setup: setupReport,
	})
}

// analyseOptions loads the splits of the run's data set and returns opts,
// the options of run.Folder.Analyse, with the splits, the inference
// options and progress on stderr unless quiet. It warns when the exported
// graphs are stale against the checkpoint.
func analyseOptions(ctx context.Context, dir run.Folder, data *dataFlags, rt *ortFlags, quiet bool, opts run.AnalyseOptions) (run.AnalyseOptions, error) {
	if err := dir.Exported(); err != nil {
		return opts, err
	}
	if why, err := dir.Stale(); err != nil {
		return opts, err
	} else if why != "" {
		fmt.Fprintf(os.Stderr, "warning: %s: run 'latent export %s' to refresh it\n", why, dir)
	}
	var err error
	if opts.Inference, err = rt.options(); err != nil {
		return opts, err
	}
	if md, err := exporter.ReadMetadata(dir.Path(run.EncoderFile)); err == nil {
		data.useRun(md.Training, md.Arch.Input)
	} else if data.name == "" {
		data.name = dataset.MNIST
	}
	if opts.Train, err = data.load(ctx, dataset.Train); err != nil {
		return opts, err
	}
	if opts.Test, err = data.load(ctx, dataset.Test); err != nil {
		return opts, err
	}
	var bar *progress.Meter
	var bars string
	opts.Progress = func(what string, done, total int) {
		if quiet {
			return
		}
		if what != bars {
			if bar != nil {
				bar.Finish()
			}
			bar, bars = nil, what
			if total == 0 {
				fmt.Fprintln(os.Stderr, what)
				return
			}
			bar = newProgress(total, what, quiet)
		}
		if bar != nil {
			bar.Set(done)
		}
	}
	return opts, nil
}

// sampleFlags are the flags of the sample quality, for eval and report.
type sampleFlags struct{ n *int }

func (s *sampleFlags) register(fs *flag.FlagSet) {
	s.n = fs.Int("samples", run.DefaultSamples, "images generated from each source (N(0, I) and the fitted Gaussian) for the sample quality (0: none)")
}

// set puts the flags into opts.
func (s *sampleFlags) set(opts *run.AnalyseOptions, seed uint64) error {
	switch {
	case *s.n < 0:
		return usageError("--samples %d: want 0 or more", *s.n)
	case *s.n == 0:
		opts.Samples = -1
	case *s.n <= run.SampleK:
		return usageError("--samples %d: want more than k = %d (or 0 for none)", *s.n, run.SampleK)
	default:
		opts.Samples = *s.n
	}
	opts.SampleSeed = seed
	return nil
}

func setupEval(fs *flag.FlagSet) func(context.Context, []string) error {
	quiet := fs.Bool("quiet", false, "no progress bars")
	seed := fs.Uint64("seed", 1, "seed of the codes of the samples")
	var samples sampleFlags
	samples.register(fs)
	var data dataFlags
	data.register(fs, "")
	var rt ortFlags
	rt.register(fs)
	return func(ctx context.Context, args []string) error {
		if len(args) != 1 {
			return usageError("want one run folder")
		}
		dir := run.Folder(args[0])
		var opts run.AnalyseOptions
		if err := samples.set(&opts, *seed); err != nil {
			return err
		}
		opts, err := analyseOptions(ctx, dir, &data, &rt, *quiet, opts)
		if err != nil {
			return err
		}
		a, err := dir.Analyse(ctx, opts)
		if err != nil {
			return err
		}
		defer a.Close()
		b, err := dir.SaveEval(a.Eval)
		if err != nil {
			return err
		}
		_, err = os.Stdout.Write(b)
		return err
	}
}

func setupReport(fs *flag.FlagSet) func(context.Context, []string) error {
	quiet := fs.Bool("quiet", false, "no progress bars")
	seed := fs.Uint64("seed", 1, "seed of the random codes drawn for the figures and the samples")
	var samples sampleFlags
	samples.register(fs)
	var data dataFlags
	data.register(fs, "")
	var rt ortFlags
	rt.register(fs)
	return func(ctx context.Context, args []string) error {
		if len(args) != 1 {
			return usageError("want one run folder")
		}
		dir := run.Folder(args[0])
		var opts run.AnalyseOptions
		if err := samples.set(&opts, *seed); err != nil {
			return err
		}
		if _, err := dir.Model(); err != nil {
			return err
		}
		opts, err := analyseOptions(ctx, dir, &data, &rt, *quiet, opts)
		if err != nil {
			return err
		}
		page, err := dir.Report(ctx, run.ReportOptions{Seed: *seed, Analyse: opts})
		if err != nil {
			return err
		}
		fmt.Println(page)
		return nil
	}
}
