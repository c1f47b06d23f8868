// Package mnisttest finds the real MNIST files for tests.
//
// Tests read MNIST in place from $LATENT_DATA when it holds the files or,
// failing that, from the
// first folder shared/datasets/mnist beside the package folder or one of its
// parents (CI lays the shared folder beside the repository clone).
package mnisttest

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
)

var (
	once  sync.Once
	found string
)

// Find returns the MNIST folder, or "" if there is none.
func Find() string {
	once.Do(func() {
		if dir := os.Getenv("LATENT_DATA"); dir != "" && hasMNIST(dir) {
			found = dir
			return
		}
		dir, err := os.Getwd()
		if err != nil {
			return
		}
		for {
			candidate := filepath.Join(dir, "shared", "datasets", "mnist")
			if hasMNIST(candidate) {
				found = candidate
				return
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				return
			}
			dir = parent
		}
	})
	return found
}

func hasMNIST(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "train-images-idx3-ubyte.gz"))
	return err == nil
}

// Dir returns the MNIST folder. Without one the test is skipped, except
// under CI (CI set in the environment), where it fails.
func Dir(t testing.TB) string {
	t.Helper()
	dir := Find()
	if dir == "" {
		msg := "real MNIST not found: set $LATENT_DATA or put shared/datasets/mnist beside the repository"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return dir
}
