package torchfile_test

import (
	"fmt"
	"os"

	"github.com/latent-ai/latent/torchfile"
)

// Load a state dict and print its tensors, in the file's order.
func ExampleLoad() {
	tensors, err := torchfile.Load("testdata/statedict.pth")
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, t := range tensors {
		fmt.Println(t.Name, t.DType, t.Shape, t.Data)
	}
	// Output:
	// 0.weight float32 [2 3] [0 0.25 0.5 0.75 1 1.25]
	// 0.bias float32 [2] [10 10.25]
	// 2.weight float32 [4 2] [20 20.25 20.5 20.75 21 21.25 21.5 21.75]
	// 2.bias float32 [4] [30 30.25 30.5 30.75]
}

// Read bytes already in memory, telling the caller which tensors are not
// float32, and refuse a whole pickled model.
func ExampleRead() {
	data, err := os.ReadFile("testdata/float64.pth")
	if err != nil {
		fmt.Println(err)
		return
	}
	tensors, err := torchfile.Read(data)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, t := range tensors {
		if t.DType != "float32" {
			fmt.Printf("tensor %s is %s, want float32\n", t.Name, t.DType)
			continue
		}
		fmt.Println(t.Name, t.Shape, t.Data)
	}

	data, err = os.ReadFile("testdata/model.pth")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(torchfile.Sniff(data))
	_, err = torchfile.Read(data)
	fmt.Println(err)
	// Output:
	// w [2] [1.5 -2]
	// tensor d is float64, want float32
	// tensor n is int64, want float32
	// tensor h is float16, want float32
	// true
	// torchfile: not a state dict: data.pkl refers to class torch.nn.modules.container.Sequential, which a state dict of tensors does not use (a whole pickled model?): save it with torch.save(model.state_dict(), path)
}
