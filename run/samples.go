package run

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/latent-ai/latent/dataset"
	"github.com/latent-ai/latent/evaluation"
	"github.com/latent-ai/latent/inference"
	"github.com/latent-ai/latent/report"
)

// DefaultSamples is the number of samples a source of the sample quality
// when AnalyseOptions.Samples is 0.
const DefaultSamples = 10000

// SampleK is the k of the sample quality: the neighbour whose distance
// makes the radii of precision and recall, as Kynkäänniemi et al. take it,
// and the neighbours that vote in the pixel k-NN classifier.
const SampleK = 3

// SampleQuality scores the images that the model generates, through its
// decoder alone (inference.Model.SampleContext), so that any kind of model
// is scored the same way: n images from codes drawn from N(0, I) and n
// from the Gaussian fitted to the training codes, both with the codes of
// a PCG seeded with (seed, 0), against the test images in pixel space.
// Precision and recall (evaluation.PrecisionRecall, k = SampleK) compare
// them with the test images; where the data is labelled, a pixel k-NN
// classifier of the training images (evaluation.PixelKNN, k = SampleK)
// gives the share of each source's samples in each class, and its
// accuracy on the test images says how far to trust it. progress, when
// not nil, is told each step (with 0 of 0).
//
// For n = 10,000 on MNIST it takes about 42 s of CPU time on the 2-core
// development machine (README), most of it the classifier's 30,000
// searches among 60,000 training images.
func (a *Analysis) SampleQuality(ctx context.Context, n int, seed uint64, progress func(what string, done, total int)) (*evaluation.Samples, error) {
	say := func(format string, args ...any) {
		if progress != nil {
			progress(fmt.Sprintf("sample quality: "+format, args...), 0, 0)
		}
	}
	size := a.Test.Size()
	if n <= SampleK {
		return nil, fmt.Errorf("sample quality: %d samples: want more than k = %d", n, SampleK)
	}
	if a.Test.N <= SampleK {
		return nil, fmt.Errorf("sample quality: %d test images: want more than k = %d", a.Test.N, SampleK)
	}
	s := &evaluation.Samples{N: n, Seed: seed, Real: a.Test.N, K: SampleK}
	real := a.Test.Floats(nil, 0, a.Test.N)
	say("the manifold of the %d test images (k = %d)", a.Test.N, SampleK)
	rm, err := evaluation.NewManifold(ctx, real, a.Test.N, size, SampleK)
	if err != nil {
		return nil, fmt.Errorf("sample quality: the test images: %w", err)
	}
	var knn *evaluation.PixelKNN
	if labelled(a.Train) && len(a.Test.Labels) == a.Test.N && a.Train.N >= SampleK {
		if knn, err = evaluation.NewPixelKNN(a.Train.Pixels, a.Train.Labels, size, SampleK); err != nil {
			return nil, fmt.Errorf("sample quality: %w", err)
		}
		say("pixel kNN (k = %d) of the %d training images, on the %d test images", SampleK, a.Train.N, a.Test.N)
		labels, err := knn.ClassifyContext(ctx, real, a.Test.N)
		if err != nil {
			return nil, fmt.Errorf("sample quality: %w", err)
		}
		s.PixelKNNK = SampleK
		if s.PixelKNNAccuracy, err = evaluation.Accuracy(labels, a.Test.Labels); err != nil {
			return nil, fmt.Errorf("sample quality: %w", err)
		}
	}
	for _, from := range []string{inference.FromNormal, inference.FromFitted} {
		say("%d samples from %s", n, from)
		_, images, err := a.Model.SampleContext(ctx, n, from, rand.New(rand.NewPCG(seed, 0)))
		if err != nil {
			return nil, fmt.Errorf("sample quality: %w", err)
		}
		say("precision, recall, density and coverage of the samples from %s", from)
		fm, err := evaluation.NewManifold(ctx, images, n, size, SampleK)
		if err != nil {
			return nil, fmt.Errorf("sample quality: the samples from %s: %w", from, err)
		}
		q := &evaluation.SampleQuality{}
		if q.Precision, q.Recall, q.Density, q.Coverage, err = evaluation.ManifoldCompare(ctx, rm, fm); err != nil {
			return nil, fmt.Errorf("sample quality: the samples from %s: %w", from, err)
		}
		if knn != nil {
			say("classes of the samples from %s under the pixel kNN", from)
			labels, err := knn.ClassifyContext(ctx, images, n)
			if err != nil {
				return nil, fmt.Errorf("sample quality: the samples from %s: %w", from, err)
			}
			q.Classes = evaluation.ClassShares(labels, knn.Classes())
		}
		if from == inference.FromNormal {
			s.Normal = q
		} else {
			s.Fitted = q
		}
	}
	return s, nil
}

// labelled reports whether s has labels of at least two classes: sets
// read without labels have none or all 0.
func labelled(s *dataset.Set) bool {
	if len(s.Labels) != s.N || s.N == 0 {
		return false
	}
	for _, l := range s.Labels {
		if l != s.Labels[0] {
			return true
		}
	}
	return false
}

// sampleTable returns the report's table of the sample quality s of the
// run whose test split is test, or nil for none: a row a source, with its
// precision, recall and class shares, under a row of the test images'
// own (true) shares.
func sampleTable(s *evaluation.Samples, test *dataset.Set) *report.Table {
	if s == nil || s.Normal == nil || s.Fitted == nil {
		return nil
	}
	t := &report.Table{Header: []string{"codes", "precision", "recall", "density", "coverage"}}
	t.Caption = fmt.Sprintf("%d images decoded from each source of codes (seed %d), against the %d test images, in pixel space. "+
		"Precision is the share of the samples that lie within the manifold of the test images, the union of the balls around each out "+
		"to its %s nearest other test image; recall is the share of the test images within the samples' manifold (Kynkäänniemi et al., 2019). "+
		"Density (the mean count of test-image balls that hold a sample, over k) and coverage (the share of test images whose ball holds a sample) "+
		"count balls around test images only, so a few outlying test images cannot lift poor samples (Naeem et al., 2020).",
		s.N, s.Seed, s.Real, ordinal(s.K))
	classes := len(s.Normal.Classes)
	if classes > 0 {
		t.Caption += fmt.Sprintf(" The classes are the shares of the samples that a %d-NN classifier on the raw pixels of the training images "+
			"puts in each class; it labels %.2f%% of the test images right.", s.PixelKNNK, 100*s.PixelKNNAccuracy)
		names := classNames(test, classes)
		t.Header = append(t.Header, names...)
		shares := evaluation.ClassShares(test.Labels, classes)
		row := []string{"test images (their labels)", "", "", "", ""}
		for _, v := range shares {
			row = append(row, fmt.Sprintf("%.1f%%", 100*v))
		}
		t.Rows = append(t.Rows, row)
	}
	for _, src := range []struct {
		name string
		q    *evaluation.SampleQuality
	}{{"N(0, I)", s.Normal}, {"fitted Gaussian", s.Fitted}} {
		row := []string{src.name, fmt.Sprintf("%.4f", src.q.Precision), fmt.Sprintf("%.4f", src.q.Recall),
			fmt.Sprintf("%.4f", src.q.Density), fmt.Sprintf("%.4f", src.q.Coverage)}
		for _, v := range src.q.Classes {
			row = append(row, fmt.Sprintf("%.1f%%", 100*v))
		}
		t.Rows = append(t.Rows, row)
	}
	return t
}

// classNames returns the names of the first n labels of test: its class
// names, else its data set's, else the numbers.
func classNames(test *dataset.Set, n int) []string {
	names := test.Classes
	if names == nil {
		names = dataset.ClassNames(test.Name)
	}
	out := make([]string, n)
	for i := range out {
		if i < len(names) {
			out[i] = names[i]
		} else {
			out[i] = fmt.Sprint(i)
		}
	}
	return out
}

// ordinal returns 1st, 2nd, 3rd, 4th, ... for k.
func ordinal(k int) string {
	switch {
	case k%100 >= 11 && k%100 <= 13:
		return fmt.Sprintf("%dth", k)
	case k%10 == 1:
		return fmt.Sprintf("%dst", k)
	case k%10 == 2:
		return fmt.Sprintf("%dnd", k)
	case k%10 == 3:
		return fmt.Sprintf("%drd", k)
	}
	return fmt.Sprintf("%dth", k)
}
