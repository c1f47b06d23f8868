package checkpoint

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/latent-ai/latent/models"
)

// Tensor is one entry of a state dict read from another program's file:
// a PyTorch .pth file or a plain safetensors file.
type Tensor struct {
	Name string
	// DType is PyTorch's name of the element type: "float32", "float64"...
	DType string
	Shape []int
	// Data holds the values in row-major order for float32 tensors, and is
	// nil for the others.
	Data []float32
}

// FromStateDict returns a model of arch with the weights of a state dict,
// as torch.save(model.state_dict(), path) writes it for the notebook's
// classes. It checks the tensors against arch.Params(): every name
// present (the older names of models.Arch.Indexed are accepted too), none
// extra, each float32, of its shape and finite. Each error names the
// tensor and says what is wrong; all are reported at once. The model holds
// copies of the values; its Meta is empty.
func FromStateDict(arch models.Arch, tensors []Tensor) (*Model, error) {
	byName := make(map[string]Tensor, len(tensors))
	for _, t := range tensors {
		byName[t.Name] = t
	}
	params := arch.Params()
	stored := storedParams(arch, func(name string) bool { _, ok := byName[name]; return ok })
	m := &Model{Arch: arch, Params: make(map[string][]float32, len(params))}
	var problems []string
	want := map[string]bool{}
	for i, p := range params {
		name := stored[i].Name
		want[name] = true
		t, ok := byName[name]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("%s missing", name))
		case !slices.Equal(t.Shape, p.Shape):
			problems = append(problems, fmt.Sprintf("%s has shape %v, want %v", name, t.Shape, p.Shape))
		case t.DType != "float32" || len(t.Data) != p.Size():
			problems = append(problems, fmt.Sprintf("%s is %s, want float32 (convert it with .float() before saving)", name, t.DType))
		default:
			if j := slices.IndexFunc(t.Data, func(v float32) bool { return math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) }); j >= 0 {
				problems = append(problems, fmt.Sprintf("%s holds %v at index %d", name, t.Data[j], j))
				continue
			}
			m.Params[p.Name] = slices.Clone(t.Data)
		}
	}
	for _, t := range tensors {
		if !want[t.Name] {
			problems = append(problems, fmt.Sprintf("unexpected tensor %s", t.Name))
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("the state dict does not fit the %s model with bottleneck %d: %s",
			arch.Kind, arch.Bottleneck, strings.Join(problems, "; "))
	}
	return m, nil
}

// ReadTensors reads the tensors of a plain safetensors file (a state dict
// saved with safetensors.torch.save_file, say), in name order. Float32
// tensors carry their values.
func ReadTensors(data []byte) ([]Tensor, error) {
	st, _, err := parseTensors(data)
	if err != nil {
		return nil, err
	}
	var out []Tensor
	for _, nt := range st.Tensors() {
		tv := nt.TensorView
		t := Tensor{Name: nt.Name, DType: torchDType(tv.DType().String())}
		for _, d := range tv.Shape() {
			t.Shape = append(t.Shape, int(d))
		}
		if t.DType == "float32" {
			t.Data = bytesFloat32(tv.Data())
		}
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b Tensor) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// torchDType returns PyTorch's name of a safetensors dtype ("F32").
func torchDType(st string) string {
	names := map[string]string{"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
		"I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool"}
	if n, ok := names[st]; ok {
		return n
	}
	return strings.ToLower(st)
}
