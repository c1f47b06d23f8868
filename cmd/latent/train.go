package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"

	"github.com/latent-ai/latent/atomicfile"
	"github.com/latent-ai/latent/checkpoint"
	"github.com/latent-ai/latent/internal/progress"
	"github.com/latent-ai/latent/models"
	"github.com/latent-ai/latent/run"
	"github.com/latent-ai/latent/trainer"
)

func init() {
	register(&command{
		name:  "train",
		short: "train an autoencoder and save it in a run folder",
		setup: setupTrain,
	})
}

func setupTrain(fs *flag.FlagSet) func(context.Context, []string) error {
	var (
		kind       = fs.String("model", "classic", "architecture: "+fmt.Sprint(models.Kinds()))
		bottleneck = fs.Int("bottleneck", models.DefaultBottleneck, "size of the code")
		epochs     = fs.Int("epochs", 5, "epochs to train (with --resume: the new total, 0 keeps the recorded one)")
		batch      = fs.Int("batch", 64, "batch size")
		lr         = fs.Float64("lr", 1e-3, "Adam learning rate")
		seed       = fs.Int64("seed", 0, "seed of the initial weights and of shuffling")
		shuffle    = fs.Bool("shuffle", false, "shuffle the training set every epoch (the notebook does not)")
		limit      = fs.Int("limit", 0, "train on the first N images only (0: all)")
		out        = fs.String("out", "", "run folder to write (default runs/MODEL)")
		resume     = fs.String("resume", "", "carry on the run in this folder where it stopped")
		force      = fs.Bool("force", false, "overwrite a run folder that already holds a model")
		quiet      = fs.Bool("quiet", false, "no progress bar")
		input      = fs.String("input", "1x28x28", "the model's input shape CxHxW, such as 3x32x32 for your own colour images (--data)")
		schedule   = fs.String("schedule", "constant", "learning-rate schedule: constant (the notebook's), cosine (annealed to 0 by the last step)\nor step (times --gamma every --step-every epochs)")
		warmup     = fs.Int("warmup", 0, "cosine and step: steps of linear warm-up from lr/warmup to lr")
		stepEvery  = fs.Int("step-every", 1, "step schedule: epochs between decays")
		gamma      = fs.Float64("gamma", 0.5, "step schedule: the factor of each decay")
		validation = fs.Float64("validation", 0, "share of the training images held out (seeded) to validate on after each epoch; the test set stays untouched")
		decay      = fs.Float64("weight-decay", 0, "AdamW's decoupled weight decay (0: Adam, the notebook's; PyTorch's AdamW default is 0.01)")
		lrScale    = fs.String("lr-scale", "", "learning-rate factors of some parameters, NAME=FACTOR pairs separated by commas, by state-dict\nname (encoder.7.weight) or module (encoder.7: weight and bias), such as encoder.7.weight=0.1")
		patience   = fs.Int("patience", 0, "with --validation: stop once this many epochs in a row have not bettered the best validation MSE (0: never)")
		beta       = fs.Float64("beta", 1, "classic-vae and conv-vae: the weight of the KL term (1: the standard VAE)")
		recipe     = fs.String("recipe", "notebook", "notebook (the notebook's: 5 epochs of Adam 1e-3, in order) or quality (the best found for the model\nwithin 10 minutes on 2 cores; see the README); flags given explicitly override it")
	)
	var data dataFlags
	data.register(fs, "mnist")
	return func(ctx context.Context, args []string) error {
		// A run's heap is mostly its data and weights, which live to the
		// end, so the heap need not double before each collection: collect
		// at 1.5 times the live heap unless $GOGC says otherwise. It costs a
		// few more collections of a few milliseconds, and saves about 50 MB
		// of peak memory on MNIST.
		if os.Getenv("GOGC") == "" {
			defer debug.SetGCPercent(debug.SetGCPercent(50))
		}
		if len(args) > 0 {
			return usageError("unexpected arguments %q", args)
		}
		var (
			t   *trainer.Trainer
			dir string
			err error
		)
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if *resume != "" {
			for _, name := range []string{"model", "bottleneck", "batch", "lr", "seed", "shuffle", "limit", "out", "input", "fit", "test-fraction", "format", "beta", "recipe", "lr-scale"} {
				if set[name] {
					return usageError("--%s cannot change a resumed run; it keeps its recorded recipe", name)
				}
			}
			dir = *resume
			n := 0
			if set["epochs"] {
				n = *epochs
			}
			if err := run.Folder(dir).Exists(); err != nil {
				return err
			}
			if t, err = trainer.Resume(run.Folder(dir).Trainer(), n); err != nil {
				return err
			}
			if !set["dataset"] {
				data.name = t.Config().Dataset
			}
			data.source, data.input = t.Config().Source, t.Config().Arch.Input
			if src := data.source; src != nil && !set["data"] {
				data.seed = src.Seed
			}
			fmt.Fprintf(os.Stderr, "resuming %s after epoch %d of %d\n", dir, t.EpochsDone(), t.Config().Epochs)
		} else {
			shape, err := parseShape(*input)
			if err != nil {
				return usageError("--%v", err)
			}
			arch, err := models.NewFor(*kind, *bottleneck, shape)
			if err != nil {
				return usageError("%v", err)
			}
			data.input, data.seed = arch.Input, uint64(*seed)
			dir = *out
			if dir == "" {
				dir = filepath.Join("runs", *kind)
			}
			if _, err := os.Stat(run.Folder(dir).Path(run.ModelFile)); err == nil && !*force {
				return fmt.Errorf("%s already holds a model: use --resume %s to carry on, --force to start over, or another --out", dir, dir)
			}
			if err := applyRecipe(fs, *recipe, *kind, set); err != nil {
				return err
			}
			scales, err := trainer.ParseLRScale(*lrScale)
			if err != nil {
				return usageError("--lr-scale: %v", err)
			}
			cfg := trainer.Config{Arch: arch, Dataset: data.name, Epochs: *epochs, Batch: *batch, LR: *lr,
				Seed: *seed, Shuffle: *shuffle, Limit: *limit, Validation: *validation, Patience: *patience, WeightDecay: *decay,
				LRScale: scales, Beta: *beta}
			switch *schedule {
			case "constant":
			case trainer.ScheduleCosine, trainer.ScheduleStep:
				cfg.Schedule = &checkpoint.Schedule{Kind: *schedule, Warmup: *warmup}
				if *schedule == trainer.ScheduleStep {
					cfg.Schedule.Every, cfg.Schedule.Gamma = *stepEvery, *gamma
				}
			default:
				return usageError("--schedule %q: want constant, cosine or step", *schedule)
			}
			if t, err = trainer.New(cfg); err != nil {
				return usageError("%v", err)
			}
		}
		// Check the run folder and the data before touching anything.
		if err := run.CheckWritable(dir); err != nil {
			return err
		}
		train, err := data.load(ctx, "train")
		if err != nil {
			return err
		}
		test, err := data.load(ctx, "test")
		if err != nil {
			return err
		}
		if *resume == "" {
			// The data is known now: record it in the run.
			cfg := t.Config()
			cfg.Dataset, cfg.Source = data.label(), data.sourceRecord()
			if t, err = trainer.New(cfg); err != nil {
				return usageError("%v", err)
			}
		}
		cfg := t.Config()
		fmt.Fprintf(os.Stderr, "training %s (bottleneck %d, %d parameters) on %s: %s, batch %d, lr %g%s, seed %d\n",
			cfg.Arch.Kind, cfg.Arch.Bottleneck, cfg.Arch.NumParams(), cfg.Dataset, plural(cfg.Epochs, "epoch"), cfg.Batch, cfg.LR, recipeNotes(cfg), cfg.Seed)
		progress := os.Stderr
		if *quiet {
			progress = nil
		}
		var undo func()
		if *resume == "" {
			if *force {
				os.Remove(run.Folder(dir).Path(run.MetricsFile))
				os.Remove(run.Folder(dir).Path(run.SplitsFile))
			}
			undo = undoFresh(dir)
			if t.Config().Source != nil {
				if err := run.Folder(dir).SaveSplits(train, test); err != nil {
					undo()
					return err
				}
			}
		}
		history, err := t.Run(ctx, run.Folder(dir).Trainer(), asData(train), asData(test), trainHooks(progress))
		if errors.Is(err, context.Canceled) {
			return fmt.Errorf("interrupted after epoch %d; %s holds that epoch's model: carry on with 'latent train --resume %s'", t.EpochsDone(), dir, dir)
		}
		if err != nil {
			if undo != nil {
				undo()
				if _, rerr := trainer.Resume(run.Folder(dir).Trainer(), 0); rerr == nil {
					return withHint(err, fmt.Sprintf("then carry on with 'latent train --resume %s'", dir))
				}
			}
			return err
		}
		if len(history) > 0 {
			last := history[len(history)-1]
			_, peak := trainer.MemoryMiB()
			if t.Stopped() {
				fmt.Fprintf(os.Stderr, "stopped early after epoch %d of %d: %d epochs without a better validation MSE\n", last.Epoch, cfg.Epochs, cfg.Patience)
			}
			fmt.Fprintf(os.Stderr, "peak RSS %.0f MiB\n", peak)
			elbo := ""
			if last.TestNegELBO > 0 {
				elbo = fmt.Sprintf("\ttest negative ELBO %.4f", last.TestNegELBO)
			}
			fmt.Printf("%s\ttest MSE %.6f\ttrain loss %.6f%s\n", run.Folder(dir).Path(run.ModelFile), last.TestMSE, last.TrainLoss, elbo)
		} else {
			fmt.Printf("%s\tnothing to do: %d of %s done\n", run.Folder(dir).Path(run.ModelFile), t.EpochsDone(), plural(cfg.Epochs, "epoch"))
		}
		return nil
	}
}

// undoFresh returns a function that, called after a new run failed, leaves
// nothing of it behind if it saved no model: it removes the run files and
// the folders that did not exist when undoFresh was called. A run that
// saved a model keeps it, to carry on with --resume.
func undoFresh(dir string) func() {
	created := atomicfile.MissingDirs(dir)
	var files []string
	for _, name := range []string{run.StateFile, run.ModelFile, run.MetricsFile, run.SplitsFile} {
		path := filepath.Join(dir, name)
		if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
			files = append(files, path)
		}
	}
	return func() {
		if _, err := os.Lstat(filepath.Join(dir, run.ModelFile)); !errors.Is(err, fs.ErrNotExist) {
			return
		}
		for _, f := range files {
			os.Remove(f)
		}
		for _, d := range created {
			os.Remove(d) // only if empty
		}
	}
}

// trainHooks draws the trainer's progress: on a terminal, a line redrawn
// through each epoch (none when progress is nil); off one, a plain line
// every progress.Interval; and one summary line per epoch on stderr.
func trainHooks(out *os.File) trainer.Hooks {
	var m *progress.Meter
	epochs := 0
	return trainer.Hooks{
		OnStep: func(p trainer.Progress) {
			epochs = p.Epochs
			if out == nil {
				return
			}
			if m == nil {
				m = progress.New(out, p.N, fmt.Sprintf("epoch %d/%d", p.Epoch, p.Epochs), "samples")
			}
			m.Describe(fmt.Sprintf("epoch %d/%d batch %d/%d loss %.4f", p.Epoch, p.Epochs, p.Step, p.Steps, p.Loss))
			m.Set(p.Samples)
			if p.Step == p.Steps {
				if progress.IsTerminal(out) {
					m.Finish()
				}
				m = nil
			}
		},
		OnEpoch: func(em trainer.EpochMetrics) {
			val := ""
			if em.ValMSE > 0 {
				val = fmt.Sprintf("  validation MSE %.6f", em.ValMSE)
			}
			if em.TestNegELBO > 0 {
				val += fmt.Sprintf("  test −ELBO %.3f (KL %.3f)", em.TestNegELBO, em.TestKL)
			}
			fmt.Fprintf(os.Stderr, "epoch %d/%d  train loss %.6f%s  test MSE %.6f  %.0f samples/s  RSS %.0f MiB\n",
				em.Epoch, epochs, em.TrainLoss, val, em.TestMSE, em.SamplesPerSec, em.RSSMiB)
		},
	}
}

// plural returns "1 epoch", "2 epochs", "0 epochs".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// Recipes are the recipes of --recipe beyond the notebook's: for each model
// kind, the flag values it sets. The README tells the search behind them.
var recipes = map[string]map[string]map[string]string{
	"quality": {
		"classic":     qualityClassic,
		"classic-vae": qualityClassicVAE,
		"conv":        qualityConv,
		"conv-vae":    qualityConvVAE,
	},
}

var (
	qualityClassic = map[string]string{"epochs": "25", "shuffle": "true", "schedule": "cosine", "warmup": "500", "lr": "3e-3", "weight-decay": "0.1"}
	// classic-vae keeps the 20 epochs that classic's recipe had before its
	// products changed their order of summation (see the README).
	qualityClassicVAE = map[string]string{"epochs": "20", "shuffle": "true", "schedule": "cosine", "warmup": "500", "lr": "3e-3", "weight-decay": "0.1"}
	// conv's encoder.7 (1568→128) and decoder.2 (128→1568) learn at a tenth
	// and three tenths of the rate: Adam moves all of a feature's weights
	// at once, over inputs that are all ReLU outputs, and at the full rate
	// it left most of encoder.7's features dead (see the README).
	qualityConv = map[string]string{"epochs": "75", "shuffle": "true", "schedule": "cosine", "warmup": "500", "lr": "5e-3", "weight-decay": "0.01",
		"lr-scale": "encoder.7.weight=0.1,decoder.2.weight=0.3"}
	// conv-vae keeps the 40 epochs that conv's recipe had before its step
	// got faster: its own step is slower, and 40 took it 10.9 minutes.
	qualityConvVAE = map[string]string{"epochs": "40", "shuffle": "true", "schedule": "cosine", "warmup": "500", "lr": "5e-3", "weight-decay": "0.01"}
)

// applyRecipe sets the flags of a --recipe that were not given explicitly.
func applyRecipe(fs *flag.FlagSet, recipe, kind string, set map[string]bool) error {
	if recipe == "notebook" {
		return nil
	}
	r, ok := recipes[recipe]
	if !ok {
		return usageError("--recipe %q: want notebook or quality", recipe)
	}
	flags, ok := r[kind]
	if !ok {
		return usageError("--recipe %s has no settings for --model %s", recipe, kind)
	}
	for name, v := range flags {
		if !set[name] {
			if err := fs.Set(name, v); err != nil {
				return fmt.Errorf("recipe %s: --%s %s: %w", recipe, name, v, err)
			}
		}
	}
	return nil
}

// recipeNotes describes what a run's recipe adds to the notebook's: the
// schedule, AdamW's decay, the validation share, shuffling.
func recipeNotes(cfg trainer.Config) string {
	var b strings.Builder
	if s := cfg.Schedule; s != nil {
		fmt.Fprintf(&b, " (%s", s.Kind)
		if s.Warmup > 0 {
			fmt.Fprintf(&b, ", %d warm-up steps", s.Warmup)
		}
		if s.Kind == trainer.ScheduleStep {
			fmt.Fprintf(&b, ", ×%g every %d epochs", s.Gamma, s.Every)
		}
		b.WriteString(")")
	}
	if cfg.WeightDecay > 0 {
		fmt.Fprintf(&b, ", AdamW decay %g", cfg.WeightDecay)
	}
	if len(cfg.LRScale) > 0 {
		fmt.Fprintf(&b, ", lr factors %s", trainer.LRScaleString(cfg.LRScale))
	}
	if cfg.Validation > 0 {
		fmt.Fprintf(&b, ", %g held out to validate", cfg.Validation)
		if cfg.Patience > 0 {
			fmt.Fprintf(&b, " (patience %d)", cfg.Patience)
		}
	}
	if cfg.Shuffle {
		b.WriteString(", shuffled")
	}
	if cfg.Arch.Variational {
		fmt.Fprintf(&b, ", BCE + %g·KL", cfg.Beta)
	}
	return b.String()
}
