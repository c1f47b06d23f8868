package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/latent-ai/latent/checkpoint"
	"github.com/latent-ai/latent/dataset"
)

// TestFashionNeverReadsMNIST trains with --dataset fashion-mnist while
// $LATENT_DATA names MNIST's folder, as the Makefile sets it, and checks
// that the run read Fashion-MNIST: the files and MD5s it recorded, and the
// labels of the test images it encodes. It also checks that a folder of the
// other data set is refused with a clear error.
func TestFashionNeverReadsMNIST(t *testing.T) {
	ortNeedRuntime(t)
	mnist := ortMNISTDir(t)
	fashion, err := dataset.Load(dataset.FashionMNIST, dataset.DefaultFashionDir, dataset.Test)
	if err != nil {
		t.Fatalf("Fashion-MNIST (apt-get install dataset-fashion-mnist): %v", err)
	}
	digits, err := dataset.Load(dataset.MNIST, mnist, dataset.Test)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Equal(fashion.Labels[:20], digits.Labels[:20]) {
		t.Fatal("the first 20 labels of both test sets are the same: the check below could not tell them apart")
	}
	t.Setenv(dataset.EnvData, mnist)
	t.Setenv(dataset.EnvMNIST, mnist)
	t.Setenv(dataset.EnvFashionMNIST, "")
	run := filepath.Join(t.TempDir(), "run")
	for _, args := range [][]string{
		{"train", "--model", "classic", "--dataset", "fashion-mnist", "--epochs", "1", "--limit", "128", "--out", run, "--quiet"},
		{"export", run, "--no-stats", "--quiet"},
		{"encode", run, "--split", "test", "--out", filepath.Join(run, "codes.npy"), "--quiet"},
	} {
		if code, stderr := ortLatent(t, args...); code != 0 {
			t.Fatalf("latent %s: exit %d: %s", strings.Join(args, " "), code, stderr)
		}
	}
	m, err := checkpoint.Load(filepath.Join(run, modelFile))
	if err != nil {
		t.Fatal(err)
	}
	if m.Meta.Dataset != dataset.FashionMNIST || len(m.Meta.Data) != 4 {
		t.Fatalf("recorded data set %q, files %v", m.Meta.Dataset, m.Meta.Data)
	}
	for _, f := range m.Meta.Data {
		if filepath.Dir(f.Path) != dataset.DefaultFashionDir {
			t.Errorf("trained on %s, not on Fashion-MNIST's folder %s", f.Path, dataset.DefaultFashionDir)
		}
	}
	if want := fashion.Files[1].MD5; m.Meta.Data[3].MD5 != want {
		t.Errorf("test labels recorded with MD5 %s, want Fashion-MNIST's %s", m.Meta.Data[3].MD5, want)
	}
	labels, err := os.ReadFile(filepath.Join(run, "codes-labels.npy"))
	if err != nil {
		t.Fatal(err)
	}
	if len(labels) < 10000 {
		t.Fatalf("labels file of %d bytes", len(labels))
	}
	// The file ends with the 10,000 uint8 labels.
	if got := labels[len(labels)-10000:]; !slices.Equal(got[:20], fashion.Labels[:20]) {
		t.Errorf("first labels of the encoded test set %v, want Fashion-MNIST's %v", got[:20], fashion.Labels[:20])
	}
	code, stdout, _ := latentOut(t, "info", run)
	if code != 0 || !strings.Contains(stdout, "test data   "+filepath.Join(dataset.DefaultFashionDir, "t10k-labels-idx1-ubyte.gz")) {
		t.Errorf("info does not list the test labels file: %s", stdout)
	}

	code, stderr := ortLatent(t, "train", "--model", "classic", "--dataset", "fashion-mnist", "--data", mnist, "--epochs", "1",
		"--limit", "64", "--out", filepath.Join(t.TempDir(), "mixed"), "--quiet")
	if code == 0 || !strings.Contains(stderr, "mnist's file, not fashion-mnist's") {
		t.Errorf("fashion-mnist from MNIST's folder: exit %d, %s", code, stderr)
	}
}
