package trainer

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/latent-ai/latent/dataset"
	"github.com/latent-ai/latent/internal/mnisttest"
	"github.com/latent-ai/latent/models"
)

// BenchmarkStep times Trainer.Step on the notebook's models at its batch of
// 64 and reports samples/s, the GFLOPS of its matrix products (TrainFLOPs),
// the CPU time of a step (all threads: a steadier
// measure than wall time on a busy machine) and the allocations of a step.
// The batches are MNIST's first training images in order, as in
// bench/torch_train.py --steps, or random images where MNIST is not found.
// bench/go_vs_torch.sh compares it with PyTorch.
func BenchmarkStep(b *testing.B) {
	const batch = 64
	images, source := benchImages(batch)
	b.Logf("BLAS: %s; data: %s", BLAS(), source)
	for _, kind := range []string{"classic", "conv"} {
		b.Run(kind, func(b *testing.B) {
			t, step := warmStepper(b, kind, images, batch)
			arch := t.cfg.Arch
			b.ReportAllocs()
			cpu0 := cpuTime()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				step(5 + i)
			}
			b.StopTimer()
			sps := float64(b.N*batch) / b.Elapsed().Seconds()
			b.ReportMetric(sps, "samples/s")
			b.ReportMetric(sps*float64(TrainFLOPs(arch))/1e9, "GFLOPS")
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
		})
	}
}

// warmStepper returns a notebook trainer of kind and step(i), which runs
// a step on the i-th batch of images (round the batches), after 5 steps of
// warm-up as torch_train.py does: the graph built, the first runs done.
func warmStepper(b *testing.B, kind string, images []float32, batch int) (*Trainer, func(i int)) {
	t := notebookTrainer(b, kind)
	// $LATENT_BENCH_RUN_CLASSIC or _CONV names a run folder of that kind to
	// start from, its weights and Adam state, instead of fresh weights: a
	// trained model's steps can run slower than a fresh one's (see
	// kernels.SigmoidGrad).
	if dir := os.Getenv("LATENT_BENCH_RUN_" + strings.ToUpper(kind)); dir != "" {
		var err error
		files := Files{Model: filepath.Join(dir, "model.safetensors"), State: filepath.Join(dir, "optimizer.safetensors")}
		if t, err = Resume(files, 0); err != nil {
			b.Fatal(err)
		}
		if got := t.Config().Arch.Kind; got != kind {
			b.Fatalf("%s holds a %s run, not %s", dir, got, kind)
		}
	}
	batches := len(images) / (batch * 784)
	step := func(i int) {
		at := i % batches * batch * 784
		if _, err := t.Step(images[at:at+batch*784], batch); err != nil {
			b.Fatal(err)
		}
	}
	for i := 0; i < 5; i++ {
		step(i)
	}
	// The steps raised GOMAXPROCS by one, a processor for the pool to
	// spare (pool.keepSpare), as in latent train; the testing package sets
	// it back before the timed runs, and the steps raise it again. Leave
	// it as the testing package set it.
	b.Cleanup(func() { runtime.GOMAXPROCS(workPool.size()) })
	return t, step
}

var benchData struct {
	once   sync.Once
	images []float32
	source string
}

// benchImages returns up to 1000 batches of MNIST training images, or 16
// batches of uniform random ones without MNIST, and says which.
func benchImages(batch int) ([]float32, string) {
	benchData.once.Do(func() {
		if dir := mnisttest.Find(); dir != "" {
			if set, err := dataset.Load("mnist", dir, "train"); err == nil {
				n := min(set.N, 1000*batch) / batch * batch
				benchData.images, benchData.source = set.Floats(nil, 0, n), "MNIST "+dir
				return
			}
		}
		rng := rand.New(rand.NewPCG(1, 2))
		benchData.images = make([]float32, 16*batch*784)
		for i := range benchData.images {
			benchData.images[i] = rng.Float32()
		}
		benchData.source = "random"
	})
	return benchData.images, benchData.source
}

// cpuTime is the user and system time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// notebookTrainer returns a fresh trainer of the notebook's model kind with
// its recipe (DefaultConfig).
func notebookTrainer(tb testing.TB, kind string) *Trainer {
	tb.Helper()
	arch, err := models.New(kind, models.DefaultBottleneck)
	if err != nil {
		tb.Fatal(err)
	}
	t, err := New(DefaultConfig(arch))
	if err != nil {
		tb.Fatal(err)
	}
	return t
}

// BenchmarkStepOps says where a training step's time goes: the wall time
// of each op of the step's graph (and of the weight updates that run after
// an op, apart), per step, for the notebook's models at batch 64. The
// steps run in 5 rounds of b.N/5; each op's figure is its least per-step
// time over the rounds, the least disturbed on a busy machine, beside the
// least whole step. "outside the ops" is the step's time in Gorgonia's
// machine and the trainer around the ops. It prints the table for b.N of
// 50 steps or more. Run it with
//
//	go test -tags openblas -run - -bench StepOps -benchtime 200x ./trainer
func BenchmarkStepOps(b *testing.B) {
	const batch, rounds = 64, 5
	images, source := benchImages(batch)
	b.Logf("BLAS: %s; kernels: %s; data: %s", BLAS(), Kernels(), source)
	for _, kind := range []string{"classic", "conv"} {
		b.Run(kind, func(b *testing.B) {
			_, step := warmStepper(b, kind, images, batch)
			per := max(1, b.N/rounds)
			best := map[string]time.Duration{}
			bestStep := time.Duration(1 << 62)
			b.ResetTimer()
			for r := 0; r < rounds; r++ {
				opTimes = map[string]time.Duration{}
				t0 := time.Now()
				for i := 0; i < per; i++ {
					step(5 + r*per + i)
				}
				bestStep = min(bestStep, time.Since(t0)/time.Duration(per))
				for k, d := range opTimes {
					if v, ok := best[k]; !ok || d/time.Duration(per) < v {
						best[k] = d / time.Duration(per)
					}
				}
			}
			opTimes = nil
			b.StopTimer()
			keys := make([]string, 0, len(best))
			var sum time.Duration
			for k, d := range best {
				keys = append(keys, k)
				sum += d
			}
			sort.Slice(keys, func(i, j int) bool { return best[keys[i]] > best[keys[j]] })
			var out strings.Builder
			fmt.Fprintf(&out, "%s: a step %.3f ms (%.0f samples/s), in its ops %.3f ms\n", kind, ms(bestStep), batch/bestStep.Seconds(), ms(sum))
			for _, k := range keys {
				fmt.Fprintf(&out, "  %7.3f ms %5.1f%%  %s\n", ms(best[k]), 100*best[k].Seconds()/bestStep.Seconds(), k)
			}
			fmt.Fprintf(&out, "  %7.3f ms %5.1f%%  outside the ops\n", ms(bestStep-sum), 100*(bestStep-sum).Seconds()/bestStep.Seconds())
			if b.N >= 10*rounds { // not the benchmark's first, 1-step probe
				fmt.Print(out.String())
			}
		})
	}
}

func ms(d time.Duration) float64 { return d.Seconds() * 1e3 }
