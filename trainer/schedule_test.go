package trainer

import (
	"context"
	"math"
	"testing"

	"github.com/latent-ai/latent/checkpoint"
	"github.com/latent-ai/latent/models"
)

func TestLRAt(t *testing.T) {
	cfg := Config{LR: 1e-3, Epochs: 4}
	cosine := cfg
	cosine.Schedule = &checkpoint.Schedule{Kind: ScheduleCosine, Warmup: 10}
	step := cfg
	step.Schedule = &checkpoint.Schedule{Kind: ScheduleStep, Every: 2, Gamma: 0.5}
	const per = 100 // steps an epoch: 400 in all
	for _, tc := range []struct {
		name string
		cfg  Config
		t    int
		want float64
	}{
		{"constant", cfg, 1, 1e-3},
		{"constant, late", cfg, 400, 1e-3},
		{"cosine, first warm-up step", cosine, 1, 1e-4},
		{"cosine, last warm-up step", cosine, 10, 1e-3},
		{"cosine, first annealed step", cosine, 11, 1e-3},
		{"cosine, half way", cosine, 11 + 195, 0.5e-3},
		{"cosine, last step", cosine, 400, 1e-3 * 0.5 * (1 + math.Cos(math.Pi*389/390))},
		{"step, epoch 1", step, 1, 1e-3},
		{"step, epoch 2", step, 200, 1e-3},
		{"step, epoch 3", step, 201, 0.5e-3},
		{"step, epoch 4", step, 400, 0.5e-3},
	} {
		if got := LRAt(tc.cfg, tc.t, per); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("%s: step %d: %g, want %g", tc.name, tc.t, got, tc.want)
		}
	}
	bad := cfg
	bad.Arch, _ = models.New("classic", 10)
	bad.Batch = 64
	for _, s := range []*checkpoint.Schedule{{Kind: "linear"}, {Kind: ScheduleCosine, Warmup: -1}, {Kind: ScheduleStep, Every: 0, Gamma: 0.5}, {Kind: ScheduleStep, Every: 1, Gamma: 2}} {
		bad.Schedule = s
		if _, err := New(bad); err == nil {
			t.Errorf("schedule %+v was accepted", *s)
		}
	}
}

// TestScheduleResumeIsBitIdentical interrupts a run with a cosine schedule
// and warm-up after its first epoch, resumes it from its folder, and checks
// that it ends with the weights of a run that trained straight through,
// bit for bit, and that the schedule moved the weights elsewhere than the
// constant rate does.
func TestScheduleResumeIsBitIdentical(t *testing.T) {
	train, _ := realMNIST(t)
	train = firstN(train, 300)
	arch, _ := models.New("classic", 10)
	cfg := DefaultConfig(arch)
	cfg.Epochs, cfg.Shuffle, cfg.Seed = 2, true, 3
	cfg.Schedule = &checkpoint.Schedule{Kind: ScheduleCosine, Warmup: 3}

	straight, _ := New(cfg)
	if _, err := straight.Run(context.Background(), filesIn(t.TempDir()), train, Data{}, Hooks{}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	part, _ := New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := part.Run(ctx, filesIn(dir), train, Data{}, Hooks{OnEpoch: func(EpochMetrics) { cancel() }}); err == nil {
		t.Fatal("the interrupted run ended without an error")
	}
	resumed, err := Resume(filesIn(dir), 0)
	if err != nil {
		t.Fatal(err)
	}
	if resumed.EpochsDone() != 1 || resumed.Config().Schedule == nil || *resumed.Config().Schedule != *cfg.Schedule {
		t.Fatalf("resumed after %d epochs with schedule %+v", resumed.EpochsDone(), resumed.Config().Schedule)
	}
	if _, err := resumed.Run(context.Background(), filesIn(dir), train, Data{}, Hooks{}); err != nil {
		t.Fatal(err)
	}
	if d := maxDiff(straight.Weights(), resumed.Weights()); d != 0 {
		t.Errorf("resumed weights differ from straight ones by up to %g", d)
	}
	constant := cfg
	constant.Schedule = nil
	plain, _ := New(constant)
	if _, err := plain.Run(context.Background(), filesIn(t.TempDir()), train, Data{}, Hooks{}); err != nil {
		t.Fatal(err)
	}
	if d := maxDiff(straight.Weights(), plain.Weights()); d == 0 {
		t.Error("the cosine schedule gave the constant rate's weights")
	}
}

// TestEarlyStopping trains with a validation share and a patience: with a
// rate too high to learn, the run stops after patience epochs without a
// better validation MSE, records it, and a resume does nothing more; the
// held-out images are never trained on, and the test set is not used.
func TestEarlyStopping(t *testing.T) {
	train, _ := realMNIST(t)
	train = firstN(train, 300)
	arch, _ := models.New("classic", 10)
	cfg := DefaultConfig(arch)
	cfg.Epochs, cfg.Seed, cfg.LR, cfg.Validation, cfg.Patience = 8, 2, 0.3, 0.2, 2
	dir := t.TempDir()
	tr, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	history, err := tr.Run(context.Background(), filesIn(dir), train, Data{}, Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("validation MSE: %v", valLosses(history))
	if !tr.Stopped() || len(history) >= cfg.Epochs {
		t.Fatalf("ran %d of %d epochs, stopped %v: validation %v", len(history), cfg.Epochs, tr.Stopped(), valLosses(history))
	}
	vals := valLosses(history)
	best := math.Inf(1)
	for _, v := range vals[:len(vals)-cfg.Patience] {
		best = min(best, v)
	}
	for _, v := range vals[len(vals)-cfg.Patience:] {
		if v < best {
			t.Errorf("stopped although a last epoch bettered the best: %v", vals)
		}
	}
	if steps := tr.adam.Step; steps != len(history)*4 { // 240 training images: 4 batches
		t.Errorf("%d steps in %d epochs: want 4 an epoch, on the 240 images not held out", steps, len(history))
	}
	resumed, err := Resume(filesIn(dir), 0)
	if err != nil {
		t.Fatal(err)
	}
	more, err := resumed.Run(context.Background(), filesIn(dir), train, Data{}, Hooks{})
	if err != nil || len(more) != 0 || !resumed.Stopped() {
		t.Errorf("resuming a stopped run: %d epochs, stopped %v, %v", len(more), resumed.Stopped(), err)
	}
}

func valLosses(h []EpochMetrics) []float64 {
	var v []float64
	for _, m := range h {
		v = append(v, m.ValMSE)
	}
	return v
}
