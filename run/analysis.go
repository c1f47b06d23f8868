package run

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/latent-ai/latent/atomicfile"
	"github.com/latent-ai/latent/checkpoint"
	"github.com/latent-ai/latent/dataset"
	"github.com/latent-ai/latent/evaluation"
	"github.com/latent-ai/latent/inference"
	"github.com/latent-ai/latent/report"
	"github.com/latent-ai/latent/trainer"
)

// AnalyseOptions configure Analyse.
type AnalyseOptions struct {
	// Train and Test are the splits of the run's data set.
	Train, Test *dataset.Set
	// Inference configures the ONNX Runtime sessions.
	Inference inference.Options
	// Progress, when not nil, is called as the work goes: what is under way
	// ("encoding mnist train", "scoring the codes") and how far (done of
	// total; 0 of 0 when it cannot say).
	Progress func(what string, done, total int)
	// Samples is how many images to generate from each source of codes
	// for the sample quality (evaluation.Samples): 0 for DefaultSamples, a
	// negative number for none (no sample quality in the report).
	Samples int
	// SampleSeed seeds the codes of the samples, as given (zero too).
	SampleSeed uint64
}

// Analysis is what Analyse computes from an exported run: the open model,
// the splits, their codes and the scores. Close it when done.
type Analysis struct {
	Model       *inference.Model
	Train, Test *dataset.Set
	TrainCodes  []float32 // Train.N·b values
	TestCodes   []float32 // Test.N·b values
	Eval        *evaluation.Report
}

// Close releases the model's ONNX Runtime sessions.
func (a *Analysis) Close() error { return a.Model.Close() }

// Analyse opens the folder's exported graphs, encodes both splits, decodes
// the test codes and scores them: test MSE and PSNR, kNN, a linear probe
// and k-means (package evaluation); then, unless opts.Samples is negative,
// it scores the images the model generates (SampleQuality). The export
// must hold latent statistics.
func (f Folder) Analyse(ctx context.Context, opts AnalyseOptions) (*Analysis, error) {
	if err := f.Exported(); err != nil {
		return nil, err
	}
	m, err := inference.OpenRun(string(f), opts.Inference)
	if err != nil {
		return nil, err
	}
	a := &Analysis{Model: m, Train: opts.Train, Test: opts.Test}
	if m.Stats() == nil {
		m.Close()
		return nil, fmt.Errorf("%s was exported without latent statistics: run 'latent export %s' again without --no-stats", f, f)
	}
	progress := func(s *dataset.Set) func(int, int) {
		if opts.Progress == nil {
			return nil
		}
		return func(done, total int) { opts.Progress("encoding "+s.Name+" "+s.Split, done, total) }
	}
	if a.TrainCodes, err = EncodeSet(ctx, m, a.Train, 0, progress(a.Train)); err == nil {
		a.TestCodes, err = EncodeSet(ctx, m, a.Test, 0, progress(a.Test))
	}
	if err == nil {
		if opts.Progress != nil {
			opts.Progress("scoring the codes: kNN, linear probe, k-means", 0, 0)
		}
		a.Eval, err = a.score(ctx)
	}
	if err == nil && opts.Samples >= 0 {
		a.Eval.Samples, err = a.SampleQuality(ctx, cmp.Or(opts.Samples, DefaultSamples), opts.SampleSeed, opts.Progress)
	}
	if err != nil {
		m.Close()
		return nil, err
	}
	return a, nil
}

// score computes the test MSE through the decoder and the code metrics.
func (a *Analysis) score(ctx context.Context) (*evaluation.Report, error) {
	const batch = 1000
	var sum float64
	b := a.Model.Bottleneck()
	size := a.Test.Size()
	var in []float32
	for off := 0; off < a.Test.N; off += batch {
		n := min(batch, a.Test.N-off)
		images, err := a.Model.DecodeContext(ctx, a.TestCodes[off*b:(off+n)*b], n)
		if err != nil {
			return nil, err
		}
		in = a.Test.Floats(in, off, n)
		for i, y := range images {
			d := float64(y) - float64(in[i])
			sum += d * d
		}
	}
	r, err := evaluation.Evaluate(evaluation.Split{Codes: a.TrainCodes, Labels: a.Train.Labels},
		evaluation.Split{Codes: a.TestCodes, Labels: a.Test.Labels}, b, evaluation.Options{K: 5, Clusters: 10, Restarts: 5})
	if err != nil {
		return nil, err
	}
	r.TestMSE = sum / float64(a.Test.N*size)
	r.PSNR = evaluation.PSNR(r.TestMSE)
	return r, nil
}

// SaveEval writes r to the folder's EvalFile, atomically, and returns the
// JSON written.
func (f Folder) SaveEval(r *evaluation.Report) ([]byte, error) {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, err
	}
	b = append(b, '\n')
	return b, atomicfile.WriteBytes(f.Path(EvalFile), b, 0o644)
}

// ReportOptions configure Report.
type ReportOptions struct {
	// Seed is the seed of the random codes drawn for the figures.
	Seed uint64
	// Analyse are the options of the analysis the report is drawn from.
	Analyse AnalyseOptions
}

// Report analyses the run (Analyse), saves its EvalFile, and writes
// ReportDir/index.html with the run's settings, the metrics, the per-epoch
// losses and the notebook's figures, and returns the page's path. The
// report is written into a hidden folder, made first so that an
// unwritable run folder is reported before the long analysis, and moved
// into place once complete: a failure leaves the old report, if any, and
// no half-written one.
func (f Folder) Report(ctx context.Context, opts ReportOptions) (string, error) {
	m, err := f.Model()
	if err != nil {
		return "", err
	}
	tmp, err := stage(string(f), "report")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", fmt.Errorf("report: %w", err)
	}
	a, err := f.Analyse(ctx, opts.Analyse)
	if err != nil {
		return "", err
	}
	defer a.Close()
	if _, err := f.SaveEval(a.Eval); err != nil {
		return "", err
	}
	out := f.Path(ReportDir)
	figDir := filepath.Join(tmp, "figures")
	figs, err := report.Draw(figDir, report.Inputs{Codec: a.Model, Train: a.Train, Test: a.Test,
		TestCodes: a.TestCodes, Stats: a.Model.Stats(), TrainLoss: m.Meta.TrainLoss, TestLoss: m.Meta.TestLoss, Seed: opts.Seed})
	if err != nil {
		return "", stagedError("report", out, err)
	}
	history, err := f.Metrics()
	if err != nil {
		return "", err
	}
	page := f.page(m, a, history)
	page.Figures = figs
	if err := report.WriteHTML(filepath.Join(tmp, "index.html"), figDir, page); err != nil {
		return "", stagedError("report", out, err)
	}
	if err := replaceDir(tmp, out); err != nil {
		return "", err
	}
	return filepath.Join(out, "index.html"), nil
}

// page returns the report's page without its figures.
func (f Folder) page(m *checkpoint.Model, a *Analysis, history []trainer.EpochMetrics) report.Page {
	name := a.Train.Name
	page := report.Page{Title: fmt.Sprintf("latent: %s autoencoder on %s", m.Arch.Kind, name)}
	page.Settings = [][2]string{
		{"run", string(f)}, {"model", fmt.Sprintf("%s, bottleneck %d, %d parameters", m.Arch.Kind, m.Arch.Bottleneck, m.Arch.NumParams())},
		{"data set", name},
	}
	if m.Meta.Imported != "" {
		page.Settings = append(page.Settings, [2]string{"weights", "imported from " + m.Meta.Imported + " (trained elsewhere: no recipe or loss history)"})
	} else {
		page.Settings = append(page.Settings, [][2]string{
			{"epochs", fmt.Sprintf("%d of %d", m.Meta.Epochs, m.Meta.EpochsPlanned)},
			{"batch", fmt.Sprint(m.Meta.Batch)}, {"optimizer", optimizer(m.Meta)}, {"loss", lossName(m)},
			{"seed", fmt.Sprint(m.Meta.Seed)}, {"shuffle", fmt.Sprint(m.Meta.Shuffle)},
		}...)
	}
	if m.Meta.Limit > 0 {
		page.Settings = append(page.Settings, [2]string{"training images", fmt.Sprintf("first %d", m.Meta.Limit)})
	}
	for _, d := range m.Meta.Data {
		page.Settings = append(page.Settings, [2]string{d.Split + " data", d.Path + " (MD5 " + d.MD5 + ")"})
	}
	page.Settings = append(page.Settings, [2]string{"inference", "ONNX Runtime on " + a.Model.Device()})
	e := a.Eval
	page.Metrics = [][2]string{
		{"test MSE", fmt.Sprintf("%.5f", e.TestMSE)}, {"test PSNR", fmt.Sprintf("%.2f dB", e.PSNR)},
		{fmt.Sprintf("kNN accuracy (k=%d)", e.KNNK), fmt.Sprintf("%.4f", e.KNNAccuracy)},
		{"linear probe accuracy", fmt.Sprintf("%.4f", e.LinearProbeAccuracy)},
		{fmt.Sprintf("k-means accuracy (k=10, %d restarts)", e.KMeansRestarts), fmt.Sprintf("%.4f", e.KMeansAccuracy)},
		{"k-means NMI", fmt.Sprintf("%.4f", e.KMeansNMI)},
	}
	if n := len(m.Meta.TestNegELBO); n > 0 {
		page.Metrics = append(page.Metrics, [2]string{"test negative ELBO (nats per image)", fmt.Sprintf("%.3f", m.Meta.TestNegELBO[n-1])})
	}
	page.Samples = sampleTable(e.Samples, a.Test)
	for _, h := range history {
		page.Epochs = append(page.Epochs, []string{fmt.Sprint(h.Epoch), fmt.Sprintf("%.6f", h.TrainLoss),
			fmt.Sprintf("%.6f", h.TestMSE), fmt.Sprintf("%.0f", h.SamplesPerSec)})
	}
	return page
}

// optimizer describes a run's optimizer and learning rate: "Adam, lr
// 0.001", or with AdamW's decay and a schedule.
func optimizer(meta checkpoint.Meta) string {
	o := fmt.Sprintf("Adam, lr %g", meta.LR)
	if meta.WeightDecay > 0 {
		o = fmt.Sprintf("AdamW (decay %g), lr %g", meta.WeightDecay, meta.LR)
	}
	if s := meta.Schedule; s != nil {
		o += fmt.Sprintf(", %s schedule", s.Kind)
		if s.Warmup > 0 {
			o += fmt.Sprintf(" after %d warm-up steps", s.Warmup)
		}
	}
	if len(meta.LRScale) > 0 {
		o += ", lr factors " + trainer.LRScaleString(meta.LRScale)
	}
	return o
}

// lossName names a model's training loss.
func lossName(m *checkpoint.Model) string {
	if m.Arch.Variational {
		return fmt.Sprintf("binary cross-entropy summed over each image + %g·KL (a VAE)", m.Meta.Beta)
	}
	return "mean squared error"
}
