package dataset_test

import (
	"bytes"
	"context"
	"fmt"
	"os"

	"github.com/latent-ai/latent/dataset"
)

// A program finds the data folder from its --data flag (here empty), then
// $LATENT_DATA, then the default; downloads what is missing; and loads a
// split.
func ExampleLoad() {
	dir := dataset.Dir("mnist", "")
	if err := dataset.Ensure(context.Background(), "mnist", dir, os.Stderr); err != nil {
		fmt.Println(err)
		return
	}
	train, err := dataset.Load("mnist", dir, "train")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(train.N, "images of", train.Rows, "x", train.Cols)
	fmt.Println("first labels:", train.Labels[:10])
	fmt.Println("pixels of image 0:", len(train.Image(0)))
	// Output:
	// 60000 images of 28 x 28
	// first labels: [5 0 4 1 9 2 1 3 1 4]
	// pixels of image 0: 784
}

func ExampleReadLabels() {
	// An IDX labels file: magic number 0x00000801, count 3, then the labels.
	data := []byte{0, 0, 8, 1, 0, 0, 0, 3, 7, 2, 1}
	labels, err := dataset.ReadLabels(bytes.NewReader(data))
	fmt.Println(labels, err)

	// The same with a byte missing.
	_, err = dataset.ReadLabels(bytes.NewReader(data[:10]))
	fmt.Println(err)
	// Output:
	// [7 2 1] <nil>
	// malformed IDX data: truncated data: the header claims 3 labels (3 bytes of data) but only 2 bytes follow
}
