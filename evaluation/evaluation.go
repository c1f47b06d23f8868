// Package evaluation scores the codes (bottleneck vectors) that an
// autoencoder gives a labelled data set, and the images it generates.
//
// Codes and images are passed as flat []float32 slices of n·d values in
// row-major order: code i is codes[i*d : (i+1)*d]. Labels are []uint8, one
// per code; any set of label values may be present (0-9 for MNIST). The
// functions never modify the slices they are given, and keep none of them
// except NewManifold and NewPixelKNN, which say so.
//
// The scores of the codes are:
//
//   - KNNAccuracy: k-nearest-neighbour classification of test codes against
//     training codes;
//   - LinearProbeAccuracy: a multinomial logistic regression fitted on the
//     training codes and scored on the test codes;
//   - KMeans, ClusterAccuracy and NMI: how well an unsupervised clustering of
//     the codes recovers the labels;
//   - PSNR: the reconstruction quality of images in [0, 1].
//
// Evaluate computes all of the code scores at once into a Report.
//
// The scores of generated images, in pixel space, are:
//
//   - PrecisionRecall (and Manifold): the improved precision and recall of
//     Kynkäänniemi et al. (2019), how much of the samples look like real
//     images and how much of the real images the samples cover;
//   - PixelKNN, with Accuracy and ClassShares: a k-NN classifier on the
//     raw pixels of the training images, which labels the samples without
//     depending on the model, and its accuracy on real test images.
//
// Both search by brute force with exact Euclidean distances: float32
// matrix products on all cores (AVX-512 or AVX2 kernels in C where cgo and
// amd64 allow, Go elsewhere), with every close call decided again in
// float64, so that the results do not depend on the kernel.
package evaluation

import (
	"errors"
	"fmt"
	"math"
)

// Split is a set of codes with their labels: Codes holds len(Labels)·d
// values in row-major order.
type Split struct {
	Codes  []float32
	Labels []uint8
}

// Options sets the parameters of Evaluate. A zero field takes its value
// from DefaultOptions; negative values are an error.
type Options struct {
	// K is the number of neighbours of the k-NN classifier.
	K int
	// Clusters is the number of k-means clusters.
	Clusters int
	// Restarts is the number of k-means runs, the best of which is kept.
	Restarts int
	// Seed seeds k-means. It is used as given, zero included.
	Seed uint64
}

// DefaultOptions returns Options{K: 5, Clusters: 10, Restarts: 5, Seed: 0}.
func DefaultOptions() Options {
	return Options{K: 5, Clusters: 10, Restarts: 5, Seed: 0}
}

// Report holds the scores of a model's codes. Evaluate fills in every field
// except TestMSE and PSNR, which come from the reconstructions and are left
// for the caller.
//
// Note that encoding/json cannot encode an infinite PSNR (a test MSE of 0):
// callers that marshal a Report should check for it.
type Report struct {
	TestMSE             float64 `json:"test_mse"`
	PSNR                float64 `json:"psnr_db"`
	KNNAccuracy         float64 `json:"knn_accuracy"`
	KNNK                int     `json:"knn_k"`
	LinearProbeAccuracy float64 `json:"linear_probe_accuracy"`
	KMeansAccuracy      float64 `json:"kmeans_accuracy"`
	KMeansNMI           float64 `json:"kmeans_nmi"`
	KMeansRestarts      int     `json:"kmeans_restarts"`
	// Samples scores the model's generated images, when the caller
	// computed it (package run does unless told not to).
	Samples *Samples `json:"samples,omitempty"`
}

// Samples is the sample quality of a model: images decoded from random
// codes of two sources, scored in pixel space against the real test
// images (PrecisionRecall) and labelled by a PixelKNN of the training
// images.
type Samples struct {
	// N is the number of samples from each source, Seed the seed of their
	// codes, Real the number of real images they are compared with.
	N    int    `json:"n"`
	Seed uint64 `json:"seed"`
	Real int    `json:"real"`
	// K is the neighbour whose distance makes the radii of precision and
	// recall (Kynkäänniemi et al. take 3).
	K int `json:"k"`
	// Normal and Fitted score the samples from N(0, I) and from the
	// Gaussian fitted to the training codes.
	Normal *SampleQuality `json:"normal"`
	Fitted *SampleQuality `json:"fitted"`
	// PixelKNNK is the k of the pixel k-NN classifier that labels the
	// samples, and PixelKNNAccuracy its accuracy on the real test images:
	// how far its labels can be trusted. Both are 0 for unlabelled data.
	PixelKNNK        int     `json:"pixel_knn_k,omitempty"`
	PixelKNNAccuracy float64 `json:"pixel_knn_accuracy,omitempty"`
}

// SampleQuality scores the samples of one source.
type SampleQuality struct {
	// Precision is the share of the samples that lie in the manifold of
	// the real images, Recall the share of the real images that lie in
	// the manifold of the samples.
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
	// Density and Coverage are those of Naeem et al. (2020), against the
	// same balls around the real images (ManifoldDensityCoverage): unlike
	// precision and recall, a few outlying real images cannot lift them.
	Density  float64 `json:"density"`
	Coverage float64 `json:"coverage"`
	// Classes is the share of the samples that the pixel k-NN puts in
	// each class, 0 first; nil for unlabelled data.
	Classes []float64 `json:"classes,omitempty"`
}

// Evaluate scores codes of size d: the k-NN and linear-probe accuracies of
// the test split against the train split, and the cluster accuracy and NMI
// of a k-means clustering of the test codes against the test labels.
// Zero fields of opts are replaced with those of DefaultOptions.
func Evaluate(train, test Split, d int, opts Options) (*Report, error) {
	def := DefaultOptions()
	if opts.K < 0 || opts.Clusters < 0 || opts.Restarts < 0 {
		return nil, fmt.Errorf("evaluation: negative option in %+v", opts)
	}
	if opts.K == 0 {
		opts.K = def.K
	}
	if opts.Clusters == 0 {
		opts.Clusters = def.Clusters
	}
	if opts.Restarts == 0 {
		opts.Restarts = def.Restarts
	}

	knn, err := KNNAccuracy(train.Codes, train.Labels, test.Codes, test.Labels, d, opts.K)
	if err != nil {
		return nil, fmt.Errorf("evaluation: k-NN: %w", err)
	}
	probe, err := LinearProbeAccuracy(train.Codes, train.Labels, test.Codes, test.Labels, d)
	if err != nil {
		return nil, fmt.Errorf("evaluation: linear probe: %w", err)
	}
	assign, _, err := KMeans(test.Codes, len(test.Labels), d, opts.Clusters, opts.Restarts, opts.Seed)
	if err != nil {
		return nil, fmt.Errorf("evaluation: k-means of the test codes: %w", err)
	}
	acc, err := ClusterAccuracy(assign, test.Labels)
	if err != nil {
		return nil, fmt.Errorf("evaluation: k-means: %w", err)
	}
	nmi, err := NMI(assign, test.Labels)
	if err != nil {
		return nil, fmt.Errorf("evaluation: k-means: %w", err)
	}
	return &Report{
		KNNAccuracy:         knn,
		KNNK:                opts.K,
		LinearProbeAccuracy: probe,
		KMeansAccuracy:      acc,
		KMeansNMI:           nmi,
		KMeansRestarts:      opts.Restarts,
	}, nil
}

// PSNR returns the peak signal-to-noise ratio in decibels, 10·log10(1/mse),
// of images with values in [0, 1] reconstructed with mean squared error mse.
// It is +Inf for an mse of 0 and NaN for a negative or NaN mse.
func PSNR(mse float64) float64 {
	if math.IsNaN(mse) || mse < 0 {
		return math.NaN()
	}
	if mse == 0 {
		return math.Inf(1)
	}
	return -10 * math.Log10(mse)
}

var errEmpty = errors.New("no codes")

// checkCodes checks that codes holds n codes of size d, all finite, and
// that there are n labels, and returns n. what names the set in errors.
func checkCodes(what string, codes []float32, labels []uint8, d int) (int, error) {
	if d <= 0 {
		return 0, fmt.Errorf("code size d = %d, want > 0", d)
	}
	if len(codes)%d != 0 {
		return 0, fmt.Errorf("%s: %d code values are not a multiple of d = %d", what, len(codes), d)
	}
	n := len(codes) / d
	if n != len(labels) {
		return 0, fmt.Errorf("%s: %d codes of size %d but %d labels", what, n, d, len(labels))
	}
	if n == 0 {
		return 0, fmt.Errorf("%s: %w", what, errEmpty)
	}
	if err := checkFinite(what, codes, d); err != nil {
		return 0, err
	}
	return n, nil
}

// checkFinite returns an error naming the first code of size d that holds
// a NaN or an infinity.
func checkFinite(what string, codes []float32, d int) error {
	for i, v := range codes {
		f := float64(v)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("%s: code %d holds %v", what, i/d, v)
		}
	}
	return nil
}

// toFloat64 returns a float64 copy of s.
func toFloat64(s []float32) []float64 {
	out := make([]float64, len(s))
	for i, v := range s {
		out[i] = float64(v)
	}
	return out
}
