package models_test

import (
	"fmt"

	"github.com/latent-ai/latent/models"
)

func ExampleNew() {
	arch, err := models.New("conv", 10)
	if err != nil {
		panic(err)
	}
	for _, p := range arch.Params()[:4] {
		fmt.Println(p.Name, p.Shape)
	}
	fmt.Println(arch.NumParams(), "parameters")
	// Output:
	// encoder.0.weight [16 1 3 3]
	// encoder.0.bias [16]
	// encoder.3.weight [32 16 3 3]
	// encoder.3.bias [32]
	// 412731 parameters
}
