package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/latent-ai/latent/atomicfile"
	"github.com/latent-ai/latent/checkpoint"
	"github.com/latent-ai/latent/dataset"
	"github.com/latent-ai/latent/evaluation"
	"github.com/latent-ai/latent/inference"
	"github.com/latent-ai/latent/onnxmeta"
	"github.com/latent-ai/latent/report"
	"github.com/latent-ai/latent/trainer"
)

func init() {
	register(&command{
		name:  "eval",
		args:  "RUN",
		short: "print the quality metrics of an exported model as JSON (test MSE, PSNR, kNN, linear probe, k-means)",
		setup: setupEval,
	})
	register(&command{
		name:  "report",
		args:  "RUN",
		short: "write RUN/report/index.html: settings, metrics and the notebook's figures",
		setup: setupReport,
	})
}

// EvalFile caches the metrics of a run.
const EvalFile = "eval.json"

// analysis is what eval and report compute from an exported run.
type analysis struct {
	model       *inference.Model
	train, test *dataset.Set
	trainCodes  []float32
	testCodes   []float32
	eval        *evaluation.Report
}

// analyse opens the exported run, encodes both splits and scores the codes.
// The caller closes a.model.
func analyse(ctx context.Context, dir string, data *dataFlags, rt *ortFlags, quiet bool) (*analysis, error) {
	for _, f := range []string{onnxmeta.EncoderFile, onnxmeta.DecoderFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return nil, fmt.Errorf("%s has no %s: run 'latent export %s' first", dir, f, dir)
		}
	}
	if st, err := os.Stat(filepath.Join(dir, trainer.ModelFile)); err == nil {
		if enc, err := os.Stat(filepath.Join(dir, onnxmeta.EncoderFile)); err == nil && enc.ModTime().Before(st.ModTime()) {
			fmt.Fprintf(os.Stderr, "warning: %s is older than %s: run 'latent export %s' to refresh it\n", onnxmeta.EncoderFile, trainer.ModelFile, dir)
		}
	}
	opts, err := rt.options()
	if err != nil {
		return nil, err
	}
	m, err := inference.OpenRun(dir, opts)
	if err != nil {
		return nil, err
	}
	a := &analysis{model: m}
	if m.Stats() == nil {
		m.Close()
		return nil, fmt.Errorf("%s was exported without latent statistics: run 'latent export %s' again without --no-stats", dir, dir)
	}
	if data.name == "" {
		data.name = m.Metadata().Dataset
	}
	if data.name == "" {
		data.name = dataset.MNIST
	}
	if a.train, err = data.load(ctx, dataset.Train); err == nil {
		a.test, err = data.load(ctx, dataset.Test)
	}
	if err == nil {
		a.trainCodes, err = encodeSet(ctx, m, a.train, quiet)
	}
	if err == nil {
		a.testCodes, err = encodeSet(ctx, m, a.test, quiet)
	}
	if err == nil {
		a.eval, err = score(ctx, a, quiet)
	}
	if err != nil {
		m.Close()
		return nil, err
	}
	return a, nil
}

func encodeSet(ctx context.Context, m *inference.Model, s *dataset.Set, quiet bool) ([]float32, error) {
	const batch = 1000
	bar := newProgress(s.N, "encoding "+s.Name+" "+s.Split, quiet)
	codes := make([]float32, 0, s.N*m.Bottleneck())
	size := imageSize(m)
	for off := 0; off < s.N; off += batch {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n := min(batch, s.N-off)
		c, err := m.EncodeContext(ctx, s.Images[off*size:(off+n)*size], n)
		if err != nil {
			return nil, fmt.Errorf("encode %s images %d to %d: %w", s.Split, off, off+n-1, err)
		}
		codes = append(codes, c...)
		bar.Add(n)
	}
	bar.Finish()
	return codes, nil
}

// score computes the test MSE through the decoder and the code metrics.
func score(ctx context.Context, a *analysis, quiet bool) (*evaluation.Report, error) {
	const batch = 1000
	var sum float64
	b := a.model.Bottleneck()
	size := imageSize(a.model)
	for off := 0; off < a.test.N; off += batch {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n := min(batch, a.test.N-off)
		images, err := a.model.DecodeContext(ctx, a.testCodes[off*b:(off+n)*b], n)
		if err != nil {
			return nil, err
		}
		for i, y := range images {
			d := float64(y) - float64(a.test.Images[off*size+i])
			sum += d * d
		}
	}
	start := time.Now()
	if !quiet {
		fmt.Fprintln(os.Stderr, "scoring the codes: kNN, linear probe, k-means")
	}
	r, err := evaluation.Evaluate(evaluation.Split{Codes: a.trainCodes, Labels: a.train.Labels},
		evaluation.Split{Codes: a.testCodes, Labels: a.test.Labels}, b, evaluation.Options{K: 5, Clusters: 10, Restarts: 5})
	if err != nil {
		return nil, err
	}
	r.TestMSE = sum / float64(a.test.N*size)
	r.PSNR = evaluation.PSNR(r.TestMSE)
	if !quiet {
		fmt.Fprintf(os.Stderr, "scored in %.1fs\n", time.Since(start).Seconds())
	}
	return r, nil
}

func saveEval(dir string, r *evaluation.Report) ([]byte, error) {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, err
	}
	b = append(b, '\n')
	return b, atomicfile.WriteBytes(filepath.Join(dir, EvalFile), b, 0o644)
}

func setupEval(fs *flag.FlagSet) func(context.Context, []string) error {
	quiet := fs.Bool("quiet", false, "no progress bars")
	var data dataFlags
	data.register(fs, "")
	var rt ortFlags
	rt.register(fs)
	return func(ctx context.Context, args []string) error {
		if len(args) != 1 {
			return usageError("want one run folder")
		}
		a, err := analyse(ctx, args[0], &data, &rt, *quiet)
		if err != nil {
			return err
		}
		defer a.model.Close()
		b, err := saveEval(args[0], a.eval)
		if err != nil {
			return err
		}
		_, err = os.Stdout.Write(b)
		return err
	}
}

func setupReport(fs *flag.FlagSet) func(context.Context, []string) error {
	quiet := fs.Bool("quiet", false, "no progress bars")
	seed := fs.Uint64("seed", 1, "seed of the random codes drawn for the figures")
	var data dataFlags
	data.register(fs, "")
	var rt ortFlags
	rt.register(fs)
	return func(ctx context.Context, args []string) error {
		if len(args) != 1 {
			return usageError("want one run folder")
		}
		dir := args[0]
		m, err := checkpoint.Load(filepath.Join(dir, trainer.ModelFile))
		if err != nil {
			return err
		}
		// The report is written into a hidden folder, made first so that an
		// unwritable run folder is reported before the long analysis, and
		// moved into place once complete: a failure leaves the old report,
		// if any, and no half-written one.
		stage, err := stagingDir(dir, "report")
		if err != nil {
			return err
		}
		defer os.RemoveAll(stage)
		if err := os.Chmod(stage, 0o755); err != nil {
			return fmt.Errorf("report: %w", err)
		}
		a, err := analyse(ctx, dir, &data, &rt, *quiet)
		if err != nil {
			return err
		}
		defer a.model.Close()
		if _, err := saveEval(dir, a.eval); err != nil {
			return err
		}
		out := filepath.Join(dir, "report")
		figDir := filepath.Join(stage, "figures")
		figs, err := report.Draw(figDir, report.Inputs{Codec: a.model, Train: a.train, Test: a.test,
			TestCodes: a.testCodes, Stats: a.model.Stats(), TrainLoss: m.Meta.TrainLoss, TestLoss: m.Meta.TestLoss, Seed: *seed})
		if err != nil {
			return stagedError("report", out, err)
		}
		page := report.Page{Title: fmt.Sprintf("latent: %s autoencoder on %s", m.Arch.Kind, data.name), Figures: figs}
		page.Settings = [][2]string{
			{"run", dir}, {"model", fmt.Sprintf("%s, bottleneck %d, %d parameters", m.Arch.Kind, m.Arch.Bottleneck, m.Arch.NumParams())},
			{"data set", data.name},
		}
		if m.Meta.Imported != "" {
			page.Settings = append(page.Settings, [2]string{"weights", "imported from " + m.Meta.Imported + " (trained elsewhere: no recipe or loss history)"})
		} else {
			page.Settings = append(page.Settings, [][2]string{
				{"epochs", fmt.Sprintf("%d of %d", m.Meta.Epochs, m.Meta.EpochsPlanned)},
				{"batch", fmt.Sprint(m.Meta.Batch)}, {"optimizer", fmt.Sprintf("Adam, lr %g", m.Meta.LR)},
				{"seed", fmt.Sprint(m.Meta.Seed)}, {"shuffle", fmt.Sprint(m.Meta.Shuffle)},
			}...)
		}
		if m.Meta.Limit > 0 {
			page.Settings = append(page.Settings, [2]string{"training images", fmt.Sprintf("first %d", m.Meta.Limit)})
		}
		for _, f := range m.Meta.Data {
			page.Settings = append(page.Settings, [2]string{f.Split + " data", f.Path + " (MD5 " + f.MD5 + ")"})
		}
		page.Settings = append(page.Settings, [2]string{"inference", "ONNX Runtime on " + a.model.Device()})
		e := a.eval
		page.Metrics = [][2]string{
			{"test MSE", fmt.Sprintf("%.5f", e.TestMSE)}, {"test PSNR", fmt.Sprintf("%.2f dB", e.PSNR)},
			{fmt.Sprintf("kNN accuracy (k=%d)", e.KNNK), fmt.Sprintf("%.4f", e.KNNAccuracy)},
			{"linear probe accuracy", fmt.Sprintf("%.4f", e.LinearProbeAccuracy)},
			{fmt.Sprintf("k-means accuracy (k=10, %d restarts)", e.KMeansRestarts), fmt.Sprintf("%.4f", e.KMeansAccuracy)},
			{"k-means NMI", fmt.Sprintf("%.4f", e.KMeansNMI)},
		}
		history, err := trainer.ReadMetrics(dir)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			fmt.Fprintf(os.Stderr, "warning: %v\n", err)
		}
		for _, h := range history {
			page.Epochs = append(page.Epochs, []string{fmt.Sprint(h.Epoch), fmt.Sprintf("%.6f", h.TrainLoss),
				fmt.Sprintf("%.6f", h.TestMSE), fmt.Sprintf("%.0f", h.SamplesPerSec)})
		}
		if err := report.WriteHTML(filepath.Join(stage, "index.html"), figDir, page); err != nil {
			return stagedError("report", out, err)
		}
		if err := replaceDir(stage, out); err != nil {
			return err
		}
		fmt.Println(filepath.Join(out, "index.html"))
		return nil
	}
}
