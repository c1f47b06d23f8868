// Package trainer trains latent's autoencoders with Gorgonia.
//
// The graph of a model is built from its declaration in package models. The
// loss is the mean squared error between the reconstruction and the input;
// the optimizer is Adam with PyTorch's semantics (see Adam for its one
// difference). Training is deterministic: the same seed, data and build
// give bit-identical weights, and a run that is stopped and resumed ends
// with the same weights as one that is not.
//
// In a training step the graph computes the loss and the gradient of every
// parameter but the Linear layers' weights. Those the trainer computes
// itself, a block at a time, and it updates each weight with Adam during
// the run, as soon as the backward pass has used the weight for the last
// time (graph.hookDeferred): no weight gradient of a Linear layer is ever
// written out to memory. The result is the same, to the bit, as Adam on the
// graph's own gradients (TestDeferredLinearSameSteps).
//
// Trainers compute on as many goroutines as GOMAXPROCS was at the first
// step of the process's first trainer, from then on (some sums are split
// in bands by that number, so the bits depend on it, never on the
// machine). In a build with cgo, each step then keeps GOMAXPROCS one above
// that number (raising it where it is that number) and leaves that
// processor idle, so that the Go runtime does not take
// a processor from a goroutine in a long C call (see workPool).
//
// A run folder holds:
//
//	model.safetensors      the weights after the last completed epoch
//	optimizer.safetensors  the training state: the same weights with their
//	                       Adam moments, for Resume
//	metrics.jsonl          one JSON line per completed epoch
package trainer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/latent-ai/latent/internal/pixel"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/latent-ai/latent/atomicfile"
	"github.com/latent-ai/latent/checkpoint"
	"github.com/latent-ai/latent/models"
	"gorgonia.org/tensor"
)

// Files are where a run's files go; package run names those of a run
// folder. The trainer writes each atomically.
type Files struct {
	// Model is the checkpoint of the last completed epoch (the weights and
	// the training summary), as checkpoint.Model.Save writes it.
	Model string
	// State is the training state: the weights with their Adam moments, in
	// one file (checkpoint.SaveState), what Resume reads.
	State string
	// Metrics is the per-epoch metrics file, one JSON object a line.
	Metrics string
}

// Hooks receive the trainer's progress; each may be nil. They are called on
// the goroutine that runs Run, between steps, and should return quickly.
type Hooks struct {
	// OnStep is called after each step.
	OnStep func(Progress)
	// OnEpoch is called after each epoch, once it is evaluated and saved.
	OnEpoch func(EpochMetrics)
}

// Progress is where a run stands after a step.
type Progress struct {
	Epoch, Epochs int     // the epoch under way (from 1) and the planned count
	Step, Steps   int     // steps done in this epoch, and its step count
	Samples, N    int     // samples done in this epoch, and its sample count
	Loss          float64 // the last step's loss
}

// Config is the recipe of a training run. The notebook's recipe is
// Epochs 5, Batch 64, LR 1e-3, no shuffling.
type Config struct {
	Arch    models.Arch
	Dataset string // recorded in the checkpoint, e.g. "mnist"
	Epochs  int
	Batch   int
	LR      float64
	Seed    int64
	Shuffle bool // shuffle the training set each epoch (seeded)
	Limit   int  // train on the first Limit images only; 0 means all
	// Source, recorded in the checkpoint, is the user's own image source
	// (nil for IDX data sets).
	Source *checkpoint.Source
	// Schedule, when not nil, varies the learning rate step by step (see
	// LRAt); nil keeps LR, the notebook's recipe.
	Schedule *checkpoint.Schedule
	// Validation, when above 0, holds out that share of the training
	// images, drawn with Seed, to validate on after each epoch; the test
	// set stays untouched for the final score. Patience, when above 0,
	// stops the run early once that many epochs in a row have not
	// bettered the best validation MSE.
	Validation float64
	Patience   int
	// WeightDecay, when above 0, makes the optimizer AdamW, with this
	// decoupled weight decay (PyTorch's AdamW default is 0.01).
	WeightDecay float64
	// LRScale multiplies the learning rate (and AdamW's decay step, which
	// is lr·λ) of some parameters by a factor: each key is a parameter's
	// state-dict name (encoder.7.weight) or its module's (encoder.7, both
	// its weight and its bias); a parameter's own name wins over its
	// module's. nil: every parameter learns at LR.
	LRScale map[string]float64
	// Beta weighs the KL term of a variational model's loss (Arch.Variational):
	// the loss is the binary cross-entropy summed over each image plus
	// Beta·KL, averaged over the batch. DefaultConfig sets 1, the standard
	// VAE; plain autoencoders ignore it.
	Beta float64
}

// DefaultConfig returns the notebook's recipe for arch.
func DefaultConfig(arch models.Arch) Config {
	return Config{Arch: arch, Dataset: "mnist", Epochs: 5, Batch: 64, LR: 1e-3, Beta: 1}
}

// Data is a set of images: N images of the architecture's input shape
// (Arch.Input, C×H×W; 1×28×28 for MNIST), one byte per value, row-major,
// N·C·H·W bytes, as dataset.Set holds them. The trainer converts each
// batch as it uses it, each byte divided by 255 (float32(b)/255, the value
// pixel.ToFloat32 and torchvision's ToTensor give). The trainer only
// reads it.
type Data struct {
	Pixels []uint8
	N      int
	// Files are the files the images were read from, recorded in the
	// checkpoint; a resumed run must read files of the same checksums.
	Files []checkpoint.DataFile
}

// EpochMetrics is what the trainer records after each epoch.
type EpochMetrics struct {
	Epoch     int     `json:"epoch"`
	TrainLoss float64 `json:"train_loss"`         // mean of the batch losses
	TestMSE   float64 `json:"test_mse,omitempty"` // mean over all test pixels; 0 without a test set
	ValMSE    float64 `json:"val_mse,omitempty"`  // on the held-out validation images (Config.Validation)
	// TestNegELBO and TestKL are a variational model's negative ELBO per
	// test image and its KL term, in nats (Trainer.NegELBO).
	TestNegELBO   float64 `json:"test_neg_elbo,omitempty"`
	TestKL        float64 `json:"test_kl,omitempty"`
	Seconds       float64 `json:"seconds"` // training time, without evaluation
	SamplesPerSec float64 `json:"samples_per_sec"`
	RSSMiB        float64 `json:"rss_mib"`
	PeakRSSMiB    float64 `json:"peak_rss_mib"`
}

// Trainer trains one model.
type Trainer struct {
	cfg     Config
	w       *Weights
	tensors []tensor.Tensor // views of w.Values, shared by every graph
	adam    *Adam
	meta    checkpoint.Meta
	train   map[int]*graph // by batch size
	eval    map[int]*graph
	grads   [][]float32
	// stepsPerEpoch is the steps of an epoch of Run, for the schedule.
	stepsPerEpoch int
}

// New returns a trainer for a fresh model initialised from cfg.Seed.
func New(cfg Config) (*Trainer, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	w := Init(cfg.Arch, cfg.Seed)
	t := newTrainer(cfg, w)
	t.meta = checkpoint.Meta{Dataset: cfg.Dataset, Source: cfg.Source, Seed: cfg.Seed, Batch: cfg.Batch, LR: cfg.LR,
		Shuffle: cfg.Shuffle, Limit: cfg.Limit, EpochsPlanned: cfg.Epochs, Schedule: cfg.Schedule,
		Validation: cfg.Validation, Patience: cfg.Patience, WeightDecay: cfg.WeightDecay, LRScale: cfg.LRScale}
	if cfg.Arch.Variational {
		t.meta.Beta = cfg.Beta
	}
	return t, nil
}

func (c Config) check() error {
	switch {
	case c.Epochs < 0:
		return fmt.Errorf("epochs %d: want 0 or more", c.Epochs)
	case c.Batch < 1 || c.Batch > 65536:
		return fmt.Errorf("batch %d: want 1 to 65536", c.Batch)
	case !(c.LR > 0) || math.IsInf(c.LR, 0):
		return fmt.Errorf("learning rate %v: want a positive number", c.LR)
	case c.Limit < 0:
		return fmt.Errorf("limit %d: want 0 (all) or more", c.Limit)
	}
	if !(c.Beta >= 0) || math.IsInf(c.Beta, 0) {
		return fmt.Errorf("beta %v: want 0 or more", c.Beta)
	}
	if !(c.WeightDecay >= 0 && c.LR*c.WeightDecay < 1) {
		return fmt.Errorf("weight decay %v: want 0 (Adam) or more, with lr·decay below 1", c.WeightDecay)
	}
	scales, err := lrScales(c.Arch, c.LRScale)
	if err != nil {
		return err
	}
	if f := float64(slices.Max(append(scales, 1))); c.LR*f*c.WeightDecay >= 1 {
		return fmt.Errorf("weight decay %v with a learning-rate factor of %v: want lr·factor·decay below 1", c.WeightDecay, f)
	}
	if !(c.Validation >= 0 && c.Validation < 1) || c.Patience < 0 || (c.Patience > 0 && c.Validation == 0) {
		return fmt.Errorf("validation %v, patience %d: want a share in [0, 1), a patience of 0 or more, and a validation share for a patience", c.Validation, c.Patience)
	}
	if s := c.Schedule; s != nil {
		switch {
		case s.Kind != ScheduleCosine && s.Kind != ScheduleStep:
			return fmt.Errorf("learning-rate schedule %q: want %s or %s", s.Kind, ScheduleCosine, ScheduleStep)
		case s.Warmup < 0:
			return fmt.Errorf("warm-up of %d steps: want 0 or more", s.Warmup)
		case s.Kind == ScheduleStep && (s.Every < 1 || !(s.Gamma > 0 && s.Gamma <= 1)):
			return fmt.Errorf("step schedule every %d epochs by %v: want at least 1 epoch and a factor in (0, 1]", s.Every, s.Gamma)
		}
	}
	return c.Arch.Validate()
}

// lrScales returns the factor of each of arch's parameters (Adam.Scale)
// from scales, keyed by parameter or module names (Config.LRScale); nil
// where scales is empty. A name that is no parameter's or module's, or a
// factor that is not a positive number, is an error.
func lrScales(arch models.Arch, scales map[string]float64) ([]float32, error) {
	if len(scales) == 0 {
		return nil, nil
	}
	params := arch.Params()
	out := make([]float32, len(params))
	for i := range out {
		out[i] = 1
	}
	for _, name := range slices.Sorted(maps.Keys(scales)) {
		f := scales[name]
		if f32 := float32(f); !(f32 > 0) || math.IsInf(float64(f32), 0) {
			return nil, fmt.Errorf("learning-rate factor %v for %s: want a positive number within float32's range", f, name)
		}
		found := false
		for i, p := range params {
			if p.Name == name || p.Module == name {
				out[i], found = float32(f), true
			}
		}
		if !found {
			var names []string
			for _, p := range params {
				names = append(names, p.Name)
			}
			return nil, fmt.Errorf("learning-rate factor for %q: the %s model has no such parameter or module; its parameters are %s",
				name, arch.Kind, strings.Join(names, ", "))
		}
	}
	return out, nil
}

func newTrainer(cfg Config, w *Weights) *Trainer {
	t := &Trainer{cfg: cfg, w: w, train: map[int]*graph{}, eval: map[int]*graph{}}
	sizes := make([]int, len(w.Values))
	for i, v := range w.Values {
		sizes[i] = len(v)
		shape := w.Params[i].Shape
		if w.isLinearWeight(i) {
			shape = []int{shape[1], shape[0]}
		}
		t.tensors = append(t.tensors, tensor.New(tensor.WithShape(shape...), tensor.WithBacking(v)))
	}
	t.adam = NewAdam(cfg.LR, sizes)
	t.adam.WeightDecay = cfg.WeightDecay
	t.adam.Scale, _ = lrScales(cfg.Arch, cfg.LRScale) // checked by Config.check
	t.grads = make([][]float32, len(w.Values))
	return t
}

// Resume returns a trainer that carries on the run whose training state is
// in files.State, with its recorded recipe. epochs, if positive, replaces
// the planned epoch count.
func Resume(files Files, epochs int) (*Trainer, error) {
	dir := filepath.Dir(files.State)
	m, st, err := checkpoint.LoadState(files.State)
	if err != nil {
		return nil, fmt.Errorf("resume %s: %w", dir, err)
	}
	if st.Step != m.Meta.Step {
		return nil, fmt.Errorf("resume %s: the optimizer is at step %d but its weights at step %d", dir, st.Step, m.Meta.Step)
	}
	w, err := FromModel(m)
	if err != nil {
		return nil, fmt.Errorf("resume %s: %w", dir, err)
	}
	cfg := Config{Arch: m.Arch, Dataset: m.Meta.Dataset, Epochs: m.Meta.EpochsPlanned, Batch: m.Meta.Batch,
		LR: m.Meta.LR, Seed: m.Meta.Seed, Shuffle: m.Meta.Shuffle, Limit: m.Meta.Limit, Source: m.Meta.Source, Schedule: m.Meta.Schedule,
		Validation: m.Meta.Validation, Patience: m.Meta.Patience, WeightDecay: m.Meta.WeightDecay, LRScale: m.Meta.LRScale, Beta: m.Meta.Beta}
	if epochs > 0 {
		cfg.Epochs = epochs
	}
	if err := cfg.check(); err != nil {
		return nil, fmt.Errorf("resume %s: recorded recipe: %w", dir, err)
	}
	t := newTrainer(cfg, w)
	t.meta = m.Meta
	t.meta.EpochsPlanned = cfg.Epochs
	t.adam.Step = st.Step
	for i, p := range w.Params {
		tmp := NewWeights(m.Arch)
		tmp.setTorch(i, st.ExpAvg[p.Name])
		copy(t.adam.M[i], tmp.Values[i])
		tmp.setTorch(i, st.ExpAvgSq[p.Name])
		copy(t.adam.V[i], tmp.Values[i])
	}
	return t, nil
}

// Config returns the recipe the trainer follows.
func (t *Trainer) Config() Config { return t.cfg }

// EpochsDone is the number of completed epochs.
func (t *Trainer) EpochsDone() int { return t.meta.Epochs }

// Weights returns the current weights; the trainer owns them and changes
// them at every step.
func (t *Trainer) Weights() *Weights { return t.w }

// Model returns the current weights and training summary as a checkpoint
// model (a copy, in PyTorch layout).
func (t *Trainer) Model() *checkpoint.Model {
	m := t.w.Model()
	m.Meta = t.meta
	m.Meta.Step = t.adam.Step
	return m
}

// Stopped reports whether the run stopped early (Config.Patience).
func (t *Trainer) Stopped() bool { return t.meta.Stopped }

// Save writes the training state (weights and optimizer, one file) to
// files.State and then the model to files.Model, each atomically, making
// their folders if needed. A crash between the two leaves a model one epoch
// behind the state, and Resume carries on from the state.
func (t *Trainer) Save(files Files) error {
	for _, p := range []string{files.State, files.Model} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("save run: %w", err)
		}
	}
	m := t.Model()
	st := &checkpoint.Adam{Step: t.adam.Step, ExpAvg: t.w.byName(t.adam.M), ExpAvgSq: t.w.byName(t.adam.V)}
	if err := checkpoint.SaveState(files.State, m, st); err != nil {
		return err
	}
	return m.Save(files.Model)
}

// Step trains on one batch: images holds n images of Arch.InputSize()
// values. It returns the
// batch's loss before the update. A batch whose loss is not finite returns
// an error that says training diverged, and changes no weight.
func (t *Trainer) Step(images []float32, n int) (float64, error) {
	gr, err := t.graphFor(t.train, n, true)
	if err != nil {
		return 0, err
	}
	copy(gr.inputData(), images[:n*t.cfg.Arch.InputSize()])
	// The run updates the deferred Linear weights itself as it goes
	// (graph.hookDeferred), with this step of Adam, unless its loss is not
	// finite; the other parameters are updated after it.
	if t.cfg.Schedule != nil && t.stepsPerEpoch > 0 {
		t.adam.LR = LRAt(t.cfg, t.adam.Step+1, t.stepsPerEpoch)
	}
	if v := gr.vae; v != nil {
		v.sample, v.beta = true, t.cfg.Beta
		rng := rand.New(rand.NewPCG(uint64(t.cfg.Seed), epsStream^uint64(t.adam.Step+1)))
		for i := range v.eps {
			v.eps[i] = rng.NormFloat64()
		}
	}
	s := t.adam.begin()
	u := &deferredUpdate{adam: t.adam, step: s, weights: t.w.Values}
	gr.update = u
	err = gr.run()
	timedFinish(&u.left)
	gr.update = nil
	if err != nil {
		t.adam.Step--
		return 0, fmt.Errorf("training step: %w", err)
	}
	loss := scalar(gr.lossVal)
	if gr.vae != nil {
		loss += t.cfg.Beta * gr.vae.kl
	}
	if math.IsNaN(loss) || math.IsInf(loss, 0) || (gr.mse != nil && !gr.mse.finite) {
		t.adam.Step--
		return loss, fmt.Errorf("the loss is %v at step %d: training diverged; lower --lr", loss, t.adam.Step+1)
	}
	for i, p := range gr.params {
		t.grads[i] = nil
		if p == nil || gr.isDeferred(i) {
			continue
		}
		g, err := p.Grad()
		if err != nil {
			return 0, fmt.Errorf("gradient of %s: %w", t.w.Params[i].Name, err)
		}
		t.grads[i] = g.Data().([]float32)
	}
	// Every op writes its gradient afresh each run (none adds to the last
	// run's), so the gradients need no clearing between steps.
	for i, g := range t.grads {
		if g == nil {
			continue
		}
		t.adam.updateParam(s, i, t.w.Values[i], g)
	}
	for _, d := range gr.deferred {
		if !d.inRun {
			d.step(t.adam, s, t.w.Values[d.param])
		}
	}
	return loss, nil
}

// epsStream sets a variational model's noise apart from the seed's other
// streams: step s draws its ε from PCG(seed, epsStream^s), so a resumed run
// draws what it would have.
const epsStream = 0x657073 << 40

func scalar(v interface{ Data() interface{} }) float64 {
	switch d := v.Data().(type) {
	case float32:
		return float64(d)
	case float64:
		return d
	}
	return math.NaN()
}

func (t *Trainer) graphFor(cache map[int]*graph, n int, train bool) (*graph, error) {
	if gr, ok := cache[n]; ok {
		return gr, nil
	}
	grads := noGradients
	if train {
		grads = deferLinearWeights
	}
	gr, err := newGraph(t.cfg.Arch, partAutoencoder, n, t.tensors, grads)
	if err != nil {
		return nil, fmt.Errorf("build the %s graph: %w", t.cfg.Arch.Kind, err)
	}
	cache[n] = gr
	return gr, nil
}

// evalBatch is the batch size of evaluation. Each image's output does not
// depend on it; its graph's buffers do: at 500, conv's evaluation graph
// took about 20 MB more of peak memory than at 100, for no gain in speed.
const evalBatch = 100

// Evaluate returns the mean squared error of the reconstructions of data,
// averaged over every pixel.
func (t *Trainer) Evaluate(data Data) (float64, error) {
	var sum float64
	size := t.cfg.Arch.InputSize()
	for start := 0; start < data.N; start += evalBatch {
		n := min(evalBatch, data.N-start)
		gr, err := t.graphFor(t.eval, n, false)
		if err != nil {
			return 0, err
		}
		in := pixel.ToFloat32(gr.inputData(), data.Pixels[start*size:(start+n)*size])
		if gr.vae != nil {
			gr.vae.sample = false // the code is μ
		}
		if err := gr.run(); err != nil {
			return 0, fmt.Errorf("evaluate: %w", err)
		}
		for i, y := range gr.outputData() {
			d := float64(y) - float64(in[i])
			sum += d * d
		}
	}
	return sum / float64(data.N*size), nil
}

// NegELBO returns, for a variational model, the negative evidence lower
// bound per image of data, in nats: the binary cross-entropy of the
// reconstruction from one z drawn per image, summed over the image, plus
// the KL divergence of the image's q(z|x) from N(0, I), averaged over the
// images; and that KL term alone. ε is drawn from the seed, the same for
// every call, so that epochs compare on the same noise.
func (t *Trainer) NegELBO(data Data) (negELBO, kl float64, err error) {
	if !t.cfg.Arch.Variational {
		return 0, 0, fmt.Errorf("%s is not a variational model: it has no ELBO", t.cfg.Arch.Kind)
	}
	if data.N == 0 {
		return 0, 0, errors.New("no images")
	}
	size := t.cfg.Arch.InputSize()
	rng := rand.New(rand.NewPCG(uint64(t.cfg.Seed), epsStream^(1<<39)))
	var bce, kls float64
	for start := 0; start < data.N; start += evalBatch {
		n := min(evalBatch, data.N-start)
		gr, err := t.graphFor(t.eval, n, false)
		if err != nil {
			return 0, 0, err
		}
		in := pixel.ToFloat32(gr.inputData(), data.Pixels[start*size:(start+n)*size])
		gr.vae.sample = true
		for i := range gr.vae.eps {
			gr.vae.eps[i] = rng.NormFloat64()
		}
		err = gr.run()
		gr.vae.sample = false
		if err != nil {
			return 0, 0, fmt.Errorf("evaluate the ELBO: %w", err)
		}
		bce += crossEntropy(gr.outputData(), in, 1)
		kls += gr.vae.kl * float64(n)
	}
	N := float64(data.N)
	return (bce + kls) / N, kls / N, nil
}

// recordData records the data files of a fresh run in its summary. For a
// resumed run that recorded its files, it checks that files has the same
// checksums, so that a run never carries on with other data.
func (t *Trainer) recordData(files []checkpoint.DataFile) error {
	if t.meta.Epochs == 0 && t.adam.Step == 0 {
		t.meta.Data = files
		return nil
	}
	if len(t.meta.Data) == 0 || len(files) == 0 {
		return nil // an older run, or data read without files
	}
	if len(files) != len(t.meta.Data) {
		return fmt.Errorf("the run trained on %d data files, these are %d: resume it with the data it started with", len(t.meta.Data), len(files))
	}
	for i, f := range files {
		if was := t.meta.Data[i]; f.MD5 != was.MD5 {
			return fmt.Errorf("%s has MD5 %s, but the run started on %s with MD5 %s: resume it with the data it started with (--dataset, --data)",
				f.Path, f.MD5, was.Path, was.MD5)
		}
	}
	return nil
}

// Run trains until the planned number of epochs is done, evaluating on test
// after each epoch and saving to files (unless files.Model is empty) at the
// start and after each epoch, so that files.Model always holds a model that
// loads. It reports its progress through hooks. When ctx is cancelled, Run
// stops within a batch and returns ctx.Err(); the last completed epoch
// stays saved.
func (t *Trainer) Run(ctx context.Context, files Files, train, test Data, hooks Hooks) ([]EpochMetrics, error) {
	save := files.Model != ""
	n := train.N
	if t.cfg.Limit > 0 && t.cfg.Limit < n {
		n = t.cfg.Limit
	}
	if n == 0 {
		return nil, errors.New("no training images")
	}
	size := t.cfg.Arch.InputSize()
	if len(train.Pixels) < n*size || len(test.Pixels) < test.N*size {
		return nil, fmt.Errorf("image data shorter than its count of %v images", t.cfg.Arch.Input)
	}
	if err := t.recordData(append(slices.Clone(train.Files), test.Files...)); err != nil {
		return nil, err
	}
	if save && t.meta.Epochs == 0 && t.adam.Step == 0 {
		if err := t.Save(files); err != nil {
			return nil, err
		}
	}
	var history []EpochMetrics
	batch := make([]float32, t.cfg.Batch*size)
	pick, val := t.holdOut(train, n)
	if pick != nil {
		n = len(pick)
	}
	steps := (n + t.cfg.Batch - 1) / t.cfg.Batch
	t.stepsPerEpoch = steps
	for t.meta.Epochs < t.cfg.Epochs && !t.meta.Stopped {
		epoch := t.meta.Epochs + 1
		order := t.order(epoch, n)
		if pick != nil {
			// The training images, in order or shuffled.
			ids := slices.Clone(pick)
			for i, j := range order {
				ids[i] = pick[j]
			}
			order = ids
		}
		start := time.Now()
		var lossSum float64
		for s := 0; s < steps; s++ {
			if err := ctx.Err(); err != nil {
				return history, err
			}
			lo := s * t.cfg.Batch
			bn := min(t.cfg.Batch, n-lo)
			images := pixel.ToFloat32(batch, train.Pixels[lo*size:(lo+bn)*size])
			if order != nil {
				for i := 0; i < bn; i++ {
					j := order[lo+i]
					pixel.ToFloat32(batch[i*size:(i+1)*size], train.Pixels[j*size:(j+1)*size])
				}
				images = batch[:bn*size]
			}
			loss, err := t.Step(images, bn)
			if err != nil {
				return history, fmt.Errorf("epoch %d: %w", epoch, err)
			}
			lossSum += loss
			if hooks.OnStep != nil {
				hooks.OnStep(Progress{Epoch: epoch, Epochs: t.cfg.Epochs, Step: s + 1, Steps: steps, Samples: lo + bn, N: n, Loss: loss})
			}
		}
		secs := time.Since(start).Seconds()
		var testMSE float64
		if test.N > 0 {
			var err error
			if testMSE, err = t.Evaluate(test); err != nil {
				return history, err
			}
		}
		var negELBO, kl float64
		if test.N > 0 && t.cfg.Arch.Variational {
			var err error
			if negELBO, kl, err = t.NegELBO(test); err != nil {
				return history, err
			}
		}
		var valMSE float64
		if val.N > 0 {
			var err error
			if valMSE, err = t.Evaluate(val); err != nil {
				return history, err
			}
		}
		rss, peak := MemoryMiB()
		m := EpochMetrics{Epoch: epoch, TrainLoss: lossSum / float64(steps), TestMSE: testMSE, ValMSE: valMSE, TestNegELBO: negELBO, TestKL: kl,
			Seconds: secs, SamplesPerSec: float64(n) / secs, RSSMiB: rss, PeakRSSMiB: peak}
		history = append(history, m)
		t.meta.Epochs = epoch
		t.meta.TrainLoss = append(t.meta.TrainLoss, m.TrainLoss)
		if test.N > 0 {
			t.meta.TestLoss = append(t.meta.TestLoss, m.TestMSE)
			if t.cfg.Arch.Variational {
				t.meta.TestNegELBO = append(t.meta.TestNegELBO, negELBO)
			}
		}
		if val.N > 0 {
			t.meta.ValLoss = append(t.meta.ValLoss, valMSE)
			best := slices.Index(t.meta.ValLoss, slices.Min(t.meta.ValLoss))
			if p := t.cfg.Patience; p > 0 && len(t.meta.ValLoss)-1-best >= p && epoch < t.cfg.Epochs {
				t.meta.Stopped = true
			}
		}
		if save {
			if err := t.Save(files); err != nil {
				return history, err
			}
			if files.Metrics != "" {
				if err := appendMetrics(files.Metrics, m); err != nil {
					return history, err
				}
			}
		}
		if hooks.OnEpoch != nil {
			hooks.OnEpoch(m)
		}
	}
	return history, nil
}

// holdOut returns, for a run with a validation share, the indices of the
// first n training images that it trains on, in order, and the images it
// validates on, drawn with the seed; else nil and no images.
func (t *Trainer) holdOut(train Data, n int) ([]int, Data) {
	if t.cfg.Validation == 0 {
		return nil, Data{}
	}
	k := max(1, min(n-1, int(float64(n)*t.cfg.Validation+0.5)))
	rng := rand.New(rand.NewPCG(uint64(t.cfg.Seed), 0x76616c))
	held := make([]bool, n)
	for _, j := range rng.Perm(n)[:k] {
		held[j] = true
	}
	size := t.cfg.Arch.InputSize()
	var pick []int
	val := Data{Pixels: make([]uint8, 0, k*size)}
	for j := range n {
		if held[j] {
			val.Pixels = append(val.Pixels, train.Pixels[j*size:(j+1)*size]...)
			val.N++
		} else {
			pick = append(pick, j)
		}
	}
	return pick, val
}

// order returns the sample order of an epoch: nil (in order) without
// shuffling, else a permutation drawn from the seed and the epoch number,
// so that a resumed run sees the same order.
func (t *Trainer) order(epoch, n int) []int {
	if !t.cfg.Shuffle {
		return nil
	}
	rng := rand.New(rand.NewPCG(uint64(t.cfg.Seed), uint64(epoch)))
	return rng.Perm(n)
}

// appendMetrics rewrites the metrics file at path with the lines of the
// epochs before m's and then m, atomically.
func appendMetrics(path string, m EpochMetrics) error {
	old, err := ReadMetrics(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		old = nil // a damaged file is replaced
	}
	var buf []byte
	for _, o := range old {
		if o.Epoch < m.Epoch {
			line, _ := json.Marshal(o)
			buf = append(append(buf, line...), '\n')
		}
	}
	line, _ := json.Marshal(m)
	buf = append(append(buf, line...), '\n')
	return atomicfile.WriteBytes(path, buf, 0o644)
}

// ReadMetrics reads a metrics file (Files.Metrics) that Run wrote.
func ReadMetrics(path string) ([]EpochMetrics, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []EpochMetrics
	dec := json.NewDecoder(bytesReader(data))
	for dec.More() {
		var m EpochMetrics
		if err := dec.Decode(&m); err != nil {
			return out, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, m)
	}
	return out, nil
}

// Forward runs the encoder and the decoder of a set of weights through
// Gorgonia, without training. It is not safe for concurrent use.
type Forward struct {
	arch    models.Arch
	tensors []tensor.Tensor
	graphs  map[string]*graph // by part and batch size
}

// NewForward returns a forward pass over w. It reads w's values at every
// call, so it follows later changes to them.
func NewForward(w *Weights) *Forward {
	f := &Forward{arch: w.Arch, graphs: map[string]*graph{}}
	for i, v := range w.Values {
		shape := w.Params[i].Shape
		if w.isLinearWeight(i) {
			shape = []int{shape[1], shape[0]}
		}
		f.tensors = append(f.tensors, tensor.New(tensor.WithShape(shape...), tensor.WithBacking(v)))
	}
	return f
}

// Encode maps n images (n·Arch.InputSize() values) to n codes
// (n·bottleneck values), in a new slice.
func (f *Forward) Encode(images []float32, n int) ([]float32, error) {
	return f.run(partEncoder, images, n, f.arch.InputSize(), f.arch.Bottleneck)
}

// Decode maps n codes to n images, in a new slice.
func (f *Forward) Decode(codes []float32, n int) ([]float32, error) {
	return f.run(partDecoder, codes, n, f.arch.Bottleneck, f.arch.InputSize())
}

func (f *Forward) run(part string, in []float32, n, inSize, outSize int) ([]float32, error) {
	if n < 1 || len(in) != n*inSize {
		return nil, fmt.Errorf("%s: %d values for %d samples of %d", part, len(in), n, inSize)
	}
	out := make([]float32, 0, n*outSize)
	for start := 0; start < n; start += evalBatch {
		bn := min(evalBatch, n-start)
		key := fmt.Sprintf("%s/%d", part, bn)
		gr, ok := f.graphs[key]
		if !ok {
			var err error
			if gr, err = newGraph(f.arch, part, bn, f.tensors, noGradients); err != nil {
				return nil, fmt.Errorf("build the %s graph: %w", part, err)
			}
			f.graphs[key] = gr
		}
		copy(gr.inputData(), in[start*inSize:(start+bn)*inSize])
		if err := gr.run(); err != nil {
			return nil, fmt.Errorf("%s: %w", part, err)
		}
		out = append(out, gr.outputData()...)
	}
	return out, nil
}

// TrainFLOPs is the floating-point operations per sample of a training
// step's matrix products, two per multiply-add: each layer's forward
// product, its weight gradient and its input gradient, except the first
// layer's input gradient, which nothing needs. It ignores the element-wise
// work (activations, bias, loss, Adam), so samples/s × TrainFLOPs measures
// a step against the BLAS's peak.
func TrainFLOPs(arch models.Arch) int {
	macs := arch.MultiplyAdds()
	total := 0
	for _, m := range macs {
		total += 3 * m
	}
	if len(macs) > 0 {
		total -= macs[0]
	}
	return 2 * total
}
