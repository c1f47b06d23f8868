package evaluation

import (
	"context"
	"fmt"
)

// PixelKNN is a k-nearest-neighbour classifier on raw pixels: a query
// image takes the majority label of the k training images nearest to it in
// Euclidean distance over the pixel values. It needs no training and no
// model, so its view of a generated image does not depend on the model
// being evaluated. It is read-only once made and may be used by several
// goroutines.
type PixelKNN struct {
	train   *rowSet
	labels  []uint8
	k       int
	classes int
}

// NewPixelKNN returns the classifier of the training images pixels, n
// images of d pixel bytes each (dataset.Set.Pixels: the value of a byte b
// is b/255, as the models take it), with one label each (n =
// len(labels)), voting among k neighbours. It keeps pixels and labels,
// which must not change while the classifier is in use. It is an error for
// the sizes not to match, for there to be no image, or for k to be outside
// [1, n].
func NewPixelKNN(pixels, labels []uint8, d, k int) (*PixelKNN, error) {
	n := len(labels)
	switch {
	case d <= 0:
		return nil, fmt.Errorf("evaluation: pixel k-NN: image size d = %d, want > 0", d)
	case n == 0:
		return nil, fmt.Errorf("evaluation: pixel k-NN: no training images")
	case len(pixels) != n*d:
		return nil, fmt.Errorf("evaluation: pixel k-NN: %d pixel bytes for %d labels of images of %d: want %d", len(pixels), n, d, n*d)
	case k < 1 || k > n:
		return nil, fmt.Errorf("evaluation: pixel k-NN: k = %d outside [1, %d], the number of training images", k, n)
	}
	classes := 0
	for _, l := range labels {
		classes = max(classes, int(l)+1)
	}
	return &PixelKNN{train: newByteRows(pixels, n, d), labels: labels, k: k, classes: classes}, nil
}

// K returns the number of neighbours that vote.
func (c *PixelKNN) K() int { return c.k }

// Classes returns the number of classes: the largest training label + 1.
func (c *PixelKNN) Classes() int { return c.classes }

// Classify returns the label of each of the n images of queries (n rows of
// d values, the pixels' values as the models take and give them: in
// [0, 1] for images). The neighbours are the k training images nearest by
// exact Euclidean distance (see PrecisionRecall; among images at the same
// distance the lower index is nearer), and the label is the most frequent
// among them; a tie between labels goes to the label of the nearest
// neighbour among the tied ones. It keeps no slice. It is an error for the
// sizes not to match or for a value to be NaN or infinite.
//
// 10,000 queries among MNIST's 60,000 training images take 12.4 s of CPU
// time on the 2-core development machine (README).
func (c *PixelKNN) Classify(queries []float32, n int) ([]uint8, error) {
	return c.ClassifyContext(context.Background(), queries, n)
}

// ClassifyContext is Classify, stopped with ctx's error once ctx is done.
func (c *PixelKNN) ClassifyContext(ctx context.Context, queries []float32, n int) ([]uint8, error) {
	d := c.train.d
	if err := checkRows("queries", queries, n, d); err != nil {
		return nil, fmt.Errorf("evaluation: pixel k-NN: %w", err)
	}
	q, err := newRows("queries", queries, n, d, nil)
	if err != nil {
		return nil, fmt.Errorf("evaluation: pixel k-NN: %w", err)
	}
	idx, _, err := nearest(ctx, q, c.train, c.k, false, false)
	if err != nil {
		return nil, fmt.Errorf("evaluation: pixel k-NN: %w", err)
	}
	out := make([]uint8, n)
	var counts [256]int
	for i := range out {
		out[i] = vote(idx[i*c.k:(i+1)*c.k], c.labels, &counts)
	}
	return out, nil
}

// vote returns the majority label of the neighbours nb, nearest first,
// breaking ties by the label of the nearest tied neighbour. counts must
// be all zero, and is left so.
func vote(nb []int32, labels []uint8, counts *[256]int) uint8 {
	best := 0
	for _, j := range nb {
		l := labels[j]
		counts[l]++
		best = max(best, counts[l])
	}
	label, found := uint8(0), false
	for _, j := range nb {
		l := labels[j]
		if !found && counts[l] == best {
			label, found = l, true
		}
		counts[l] = 0
	}
	return label
}

// Accuracy returns the fraction of predicted labels that equal labels.
// It is an error for the two to differ in length or to be empty.
func Accuracy(predicted, labels []uint8) (float64, error) {
	if len(predicted) != len(labels) || len(labels) == 0 {
		return 0, fmt.Errorf("evaluation: accuracy: %d predictions for %d labels", len(predicted), len(labels))
	}
	right := 0
	for i, l := range labels {
		if predicted[i] == l {
			right++
		}
	}
	return float64(right) / float64(len(labels)), nil
}

// ClassShares returns the share of labels in each of classes classes:
// shares[c] is the fraction of labels equal to c. They sum to 1, up to
// rounding, when every label is below classes; labels of classes or more
// are counted in no share. It returns nil for no labels.
func ClassShares(labels []uint8, classes int) []float64 {
	if len(labels) == 0 || classes <= 0 {
		return nil
	}
	counts := make([]int, classes)
	for _, l := range labels {
		if int(l) < classes {
			counts[l]++
		}
	}
	shares := make([]float64, classes)
	for c, n := range counts {
		shares[c] = float64(n) / float64(len(labels))
	}
	return shares
}
