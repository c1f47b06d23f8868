package checkpoint

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/latent-ai/latent/models"
)

// stateDict returns the tensors of m as a state dict of float32 tensors,
// in m.Arch.Params() order, named by names (nil: today's names).
func stateDict(m *Model, names []models.Param) []Tensor {
	var ts []Tensor
	for i, p := range m.Arch.Params() {
		name := p.Name
		if names != nil {
			name = names[i].Name
		}
		ts = append(ts, Tensor{Name: name, DType: "float32", Shape: slices.Clone(p.Shape), Data: slices.Clone(m.Params[p.Name])})
	}
	return ts
}

func TestFromStateDict(t *testing.T) {
	m := testModel(t, "classic")
	good := stateDict(m, nil)
	for _, tc := range []struct {
		name string
		edit func(ts []Tensor) []Tensor
		want []string // all in the error; none: no error
	}{
		{"as saved", func(ts []Tensor) []Tensor { return ts }, nil},
		{"older names", func([]Tensor) []Tensor { return stateDict(m, m.Arch.Indexed().Params()) }, nil},
		{"missing", func(ts []Tensor) []Tensor { return ts[1:] }, []string{"encoder.0.weight missing"}},
		{"unexpected", func(ts []Tensor) []Tensor {
			return append(ts, Tensor{Name: "head.weight", DType: "float32", Shape: []int{1}, Data: []float32{1}})
		}, []string{"unexpected tensor head.weight"}},
		{"wrong shape", func(ts []Tensor) []Tensor {
			ts[2].Shape = []int{512, 256}
			return ts
		}, []string{"encoder.2.weight has shape [512 256], want [512 512]"}},
		{"float64", func(ts []Tensor) []Tensor {
			ts[3].DType, ts[3].Data = "float64", nil
			return ts
		}, []string{"encoder.2.bias is float64, want float32"}},
		{"NaN", func(ts []Tensor) []Tensor {
			ts[5].Data[3] = float32(math.NaN())
			return ts
		}, []string{"encoder.4.bias holds NaN at index 3"}},
		{"two problems at once", func(ts []Tensor) []Tensor {
			ts[0].Shape = []int{784, 512}
			return ts[:len(ts)-1]
		}, []string{"encoder.0.weight has shape [784 512], want [512 784]", "decoder.4.bias missing"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := tc.edit(stateDict(m, nil))
			got, err := FromStateDict(m.Arch, ts)
			if tc.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				for _, p := range m.Arch.Params() {
					if !slices.Equal(got.Params[p.Name], m.Params[p.Name]) {
						t.Fatalf("%s: values differ from the state dict's", p.Name)
					}
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want one that says %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
	if len(good) != 12 {
		t.Fatalf("%d tensors in the classic state dict, want 12", len(good))
	}
}

// TestReadTensors reads a latent model file as a plain state dict.
func TestReadTensors(t *testing.T) {
	m := testModel(t, "conv")
	b, err := m.encode()
	if err != nil {
		t.Fatal(err)
	}
	ts, err := ReadTensors(b)
	if err != nil {
		t.Fatal(err)
	}
	back, err := FromStateDict(m.Arch, ts)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range m.Arch.Params() {
		if !slices.Equal(back.Params[p.Name], m.Params[p.Name]) {
			t.Fatalf("%s: values differ", p.Name)
		}
	}
	if _, err := ReadTensors(b[:100]); err == nil {
		t.Error("a truncated file: no error")
	}
}
