package evaluation_test

import (
	"context"
	"testing"
	"time"

	"github.com/latent-ai/latent/dataset"
	"github.com/latent-ai/latent/evaluation"
	"github.com/latent-ai/latent/internal/mnisttest"
)

// loadMNIST returns MNIST's training and test splits.
func loadMNIST(tb testing.TB) (train, test *dataset.Set) {
	tb.Helper()
	dir := mnisttest.Dir(tb)
	var err error
	if train, err = dataset.Load(dataset.MNIST, dir, dataset.Train); err != nil {
		tb.Fatal(err)
	}
	if test, err = dataset.Load(dataset.MNIST, dir, dataset.Test); err != nil {
		tb.Fatal(err)
	}
	return train, test
}

// BenchmarkMNIST times the pixel-space searches at the sizes of latent
// eval: the manifold of the 10,000 test images, precision and recall of
// 10,000 training images against them, and the pixel k-NN (k = 3) of the
// 10,000 test images against the 60,000 training images, whose accuracy
// it reports.
func BenchmarkMNIST(b *testing.B) {
	train, test := loadMNIST(b)
	ctx := context.Background()
	real := test.Floats(nil, 0, test.N)
	fake := train.Floats(nil, 0, 10000)
	b.Run("manifold", func(b *testing.B) {
		for b.Loop() {
			if _, err := evaluation.NewManifold(ctx, real, test.N, 784, 3); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("precision-recall", func(b *testing.B) {
		for b.Loop() {
			start := time.Now()
			p, r, err := evaluation.PrecisionRecall(real, fake, test.N, 10000, 784, 3)
			if err != nil {
				b.Fatal(err)
			}
			b.Logf("precision %.4f, recall %.4f of 10,000 training images against the test images: %v", p, r, time.Since(start))
		}
	})
	b.Run("pixel-knn", func(b *testing.B) {
		for b.Loop() {
			start := time.Now()
			c, err := evaluation.NewPixelKNN(train.Pixels, train.Labels, 784, 3)
			if err != nil {
				b.Fatal(err)
			}
			pred, err := c.Classify(real, test.N)
			if err != nil {
				b.Fatal(err)
			}
			acc, _ := evaluation.Accuracy(pred, test.Labels)
			b.ReportMetric(acc, "accuracy")
			b.Logf("test accuracy %.4f: %v", acc, time.Since(start))
		}
	})
}
