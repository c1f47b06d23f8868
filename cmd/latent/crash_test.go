package main

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/latent-ai/latent/checkpoint"
	"github.com/latent-ai/latent/internal/mnisttest"
)

// TestMain lets a test run this binary as the latent command: with
// LATENT_TEST_AS_CLI=1 in the environment the process is "latent" itself.
func TestMain(m *testing.M) {
	if os.Getenv("LATENT_TEST_AS_CLI") == "1" {
		os.Exit(latent(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// latentCmd returns a command that runs latent with args.
func latentCmd(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "LATENT_TEST_AS_CLI=1")
	return cmd
}

// TestKillAndResume kills "latent train" with SIGKILL at random moments,
// several times. After every kill the run folder must hold a model that
// loads, and resuming until the run is done must end with the same weights,
// bit for bit, as a run that was never interrupted.
func TestKillAndResume(t *testing.T) {
	data := mnisttest.Dir(t)
	for _, recipe := range [][]string{
		{"--model", "classic"},
		// A VAE (its noise) and the options beyond the notebook's recipe.
		{"--model", "classic-vae", "--shuffle", "--schedule", "cosine", "--warmup", "30", "--weight-decay", "0.05", "--validation", "0.1",
			"--lr-scale", "encoder.2=0.5,decoder.0.weight=2"},
	} {
		t.Run(recipe[1], func(t *testing.T) { killAndResume(t, data, recipe) })
	}
}

func killAndResume(t *testing.T, data string, recipe []string) {
	args := append(slices.Clone(recipe), "--epochs", "4", "--limit", "1280", "--data", data, "--quiet")

	straight := t.TempDir()
	if out, err := latentCmd(append([]string{"train", "--out", straight, "--force"}, args...)...).CombinedOutput(); err != nil {
		t.Fatalf("uninterrupted run: %v\n%s", err, out)
	}

	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	cmdArgs := append([]string{"train", "--out", dir, "--force"}, args...)
	kills := 0
	for attempt := 0; attempt < 20; attempt++ {
		cmd := latentCmd(cmdArgs...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		// Kill at a random moment once the run folder holds a model, for
		// the first few attempts; then let the run finish.
		var finished bool
		if kills < 4 {
			waitFor(t, filepath.Join(dir, modelFile), done)
			select {
			case err := <-done:
				finished = err == nil
				if err != nil {
					t.Fatalf("train: %v\n%s", err, out.String())
				}
			case <-time.After(time.Duration(rng.IntN(1500)) * time.Millisecond):
				cmd.Process.Kill()
				<-done
				kills++
			}
		} else {
			if err := <-done; err != nil {
				t.Fatalf("train: %v\n%s", err, out.String())
			}
			finished = true
		}
		m, err := checkpoint.Load(filepath.Join(dir, modelFile))
		if err != nil {
			t.Fatalf("after kill %d the run folder holds no model that loads: %v", kills, err)
		}
		if finished && m.Meta.Epochs == 4 {
			break
		}
		cmdArgs = []string{"train", "--resume", dir, "--quiet", "--data", data}
	}
	if kills == 0 {
		t.Log("every run finished before its kill")
	}
	want, err := checkpoint.Load(filepath.Join(straight, modelFile))
	if err != nil {
		t.Fatal(err)
	}
	got, err := checkpoint.Load(filepath.Join(dir, modelFile))
	if err != nil {
		t.Fatal(err)
	}
	if got.Meta.Epochs != 4 || got.Meta.Step != want.Meta.Step {
		t.Fatalf("resumed run ended at epoch %d step %d, want 4 and %d", got.Meta.Epochs, got.Meta.Step, want.Meta.Step)
	}
	for name, w := range want.Params {
		for i := range w {
			if got.Params[name][i] != w[i] {
				t.Fatalf("after %d kills, %s[%d] = %v, want %v (uninterrupted)", kills, name, i, got.Params[name][i], w[i])
			}
		}
	}
	t.Logf("%d kills; the resumed run ended bit-identical to the uninterrupted one", kills)
}

// waitFor waits until path exists or the process ends.
func waitFor(t *testing.T, path string, done chan error) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(path); err == nil {
			return
		}
		select {
		case err := <-done:
			done <- err // let the caller see the end
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("%s did not appear", path)
}

// TestRecipeQuality checks that --recipe quality sets its flags unless
// they are given, and records them in the run; and that an unknown recipe
// is a usage error.
func TestRecipeQuality(t *testing.T) {
	data := mnisttest.Dir(t)
	dir := t.TempDir()
	out, err := latentCmd("train", "--model", "conv", "--recipe", "quality", "--epochs", "1", "--limit", "640",
		"--data", data, "--out", dir, "--quiet").CombinedOutput()
	if err != nil {
		t.Fatalf("train --recipe quality: %v\n%s", err, out)
	}
	m, err := checkpoint.Load(filepath.Join(dir, modelFile))
	if err != nil {
		t.Fatal(err)
	}
	meta := m.Meta
	if meta.EpochsPlanned != 1 || meta.LR != 5e-3 || meta.WeightDecay != 0.01 || !meta.Shuffle ||
		meta.Schedule == nil || meta.Schedule.Kind != "cosine" || meta.Schedule.Warmup != 500 ||
		len(meta.LRScale) != 2 || meta.LRScale["encoder.7.weight"] != 0.1 || meta.LRScale["decoder.2.weight"] != 0.3 {
		t.Errorf("recorded recipe %+v (schedule %+v): want conv's quality recipe with 1 epoch", meta, meta.Schedule)
	}
	cmd := latentCmd("train", "--recipe", "fast", "--data", data, "--out", t.TempDir())
	if out, err := cmd.CombinedOutput(); cmd.ProcessState.ExitCode() != 2 || !strings.Contains(string(out), `--recipe "fast": want notebook or quality`) {
		t.Errorf("unknown recipe: %v\n%s", err, out)
	}
	// Learning-rate factors that name no parameter, or are no number, are
	// usage errors that say what to give.
	for _, tc := range []struct{ scale, want string }{
		{"encoder.8=0.5", "its parameters are encoder.0.weight"},
		{"encoder.7.weight", "want NAME=FACTOR"},
		{"encoder.7=-2", "want a positive number"},
	} {
		cmd := latentCmd("train", "--model", "conv", "--lr-scale", tc.scale, "--data", data, "--out", t.TempDir())
		if out, err := cmd.CombinedOutput(); cmd.ProcessState.ExitCode() != 2 || !strings.Contains(string(out), tc.want) {
			t.Errorf("--lr-scale %s: %v\n%s", tc.scale, err, out)
		}
	}
}
