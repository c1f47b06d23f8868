package checkpoint

import (
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/latent-ai/latent/models"
)

// tinyArchs are small valid architectures, so that whole model files fit in
// a fuzz corpus: a linear one and a convolutional one.
func tinyArchs() []models.Arch {
	return []models.Arch{
		{Kind: "tiny", Bottleneck: 2, Input: []int{1, 2, 2},
			Encoder: []models.Layer{{Op: models.Flatten}, {Op: models.Linear, In: 4, Out: 2}},
			Decoder: []models.Layer{{Op: models.Linear, In: 2, Out: 4}, {Op: models.Sigmoid}, {Op: models.Unflatten, Shape: []int{1, 2, 2}}}},
		{Kind: "tinyconv", Bottleneck: 2, Input: []int{1, 4, 4},
			Encoder: []models.Layer{
				{Op: models.Conv2d, In: 1, Out: 2, Kernel: 3, Stride: 1, Pad: 1}, {Op: models.ReLU},
				{Op: models.MaxPool2d, Kernel: 2, Stride: 2}, {Op: models.Flatten}, {Op: models.Linear, In: 8, Out: 2}},
			Decoder: []models.Layer{
				{Op: models.Linear, In: 2, Out: 8}, {Op: models.Unflatten, Shape: []int{2, 2, 2}},
				{Op: models.ConvTranspose2d, In: 2, Out: 1, Kernel: 2, Stride: 2}, {Op: models.Sigmoid}}},
	}
}

// tinyModel returns a model of arch with distinct small weights and a short
// training summary.
func tinyModel(arch models.Arch) *Model {
	m := NewModel(arch)
	for _, p := range arch.Params() {
		for i := range m.Params[p.Name] {
			m.Params[p.Name][i] = float32(i%5)*0.25 - 0.5
		}
	}
	m.Meta = Meta{Dataset: "mnist", Epochs: 1, EpochsPlanned: 2, Seed: 1, Batch: 4, LR: 1e-3,
		TrainLoss: []float64{0.25}, TestLoss: []float64{0.5}, Step: 3}
	return m
}

func TestTinyArchs(t *testing.T) {
	for _, a := range tinyArchs() {
		if _, err := models.ParseJSON(a.JSON()); err != nil {
			t.Errorf("%s: %v", a.Kind, err)
		}
		m := tinyModel(a)
		b, err := m.encode()
		if err != nil {
			t.Fatal(err)
		}
		got, err := parseModel(b)
		if err != nil {
			t.Fatalf("%s: %v", a.Kind, err)
		}
		checkRoundTrip(t, got)
	}
}

// checkModel checks what Load promises of a model it returns.
func checkModel(t *testing.T, m *Model, what string, params map[string][]float32) {
	t.Helper()
	a, err := models.ParseJSON(m.Arch.JSON())
	if err != nil || !a.Equal(m.Arch) {
		t.Fatalf("accepted an architecture that models.ParseJSON refuses: %v", err)
	}
	if m.Arch.Bottleneck < 1 || m.Arch.Bottleneck > models.MaxBottleneck {
		t.Fatalf("accepted bottleneck %d", m.Arch.Bottleneck)
	}
	if len(params) != len(m.Arch.Params()) {
		t.Fatalf("%d %s tensors for %d parameters", len(params), what, len(m.Arch.Params()))
	}
	for _, p := range m.Arch.Params() {
		v, ok := params[p.Name]
		if !ok || len(v) != p.Size() {
			t.Fatalf("%s %s: %d values, want %d", what, p.Name, len(v), p.Size())
		}
		for i, x := range v {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				t.Fatalf("%s %s[%d] = %v accepted", what, p.Name, i, x)
			}
		}
	}
}

// checkRoundTrip checks that saving m and loading it again gives m back.
func checkRoundTrip(t *testing.T, m *Model) {
	t.Helper()
	b, err := m.encode()
	if err != nil {
		t.Fatalf("save of a loaded model: %v", err)
	}
	back, err := parseModel(b)
	if err != nil {
		t.Fatalf("load of a saved model: %v", err)
	}
	if !back.Arch.Equal(m.Arch) || !reflect.DeepEqual(back.Meta, m.Meta) {
		t.Fatalf("round trip: arch %s meta %+v, was %s %+v", back.Arch.JSON(), back.Meta, m.Arch.JSON(), m.Meta)
	}
	sameParams(t, back.Params, m.Params)
}

func sameParams(t *testing.T, got, want map[string][]float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d tensors, want %d", len(got), len(want))
	}
	for name, w := range want {
		g := got[name]
		if len(g) != len(w) {
			t.Fatalf("%s: %d values, want %d", name, len(g), len(w))
		}
		for i := range w {
			if math.Float32bits(g[i]) != math.Float32bits(w[i]) {
				t.Fatalf("%s[%d]: %v, want %v", name, i, g[i], w[i])
			}
		}
	}
}

// FuzzLoad feeds arbitrary bytes to the parsers behind Load, LoadState and
// Inspect. None may panic. A model that Load accepts has an architecture
// that models.ParseJSON accepts, all its tensors with the architecture's sizes, no
// NaN or infinity, and round-trips through Save bit for bit; the same holds
// for the weights and moments of a training state. Whatever Load or
// LoadState accepts, Inspect accepts too, and Inspect's tensors are sorted.
func FuzzLoad(f *testing.F) {
	for _, a := range tinyArchs() {
		m := tinyModel(a)
		b, _ := m.encode()
		f.Add(b)
		f.Add(b[:len(b)/2])
		st, _ := encodeState(m, &Adam{Step: 3, ExpAvg: m.Params, ExpAvgSq: m.Params})
		f.Add(st)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		info, infoErr := parseInfo(data)
		if infoErr == nil {
			if info.Metadata == nil {
				t.Fatal("nil metadata")
			}
			if !slices.IsSortedFunc(info.Tensors, func(a, b TensorInfo) int { return strings.Compare(a.Name, b.Name) }) {
				t.Fatal("tensors not sorted")
			}
		}
		if m, err := parseModel(data); err == nil {
			if infoErr != nil {
				t.Fatalf("Load accepts what Inspect refuses: %v", infoErr)
			}
			checkModel(t, m, "model", m.Params)
			checkRoundTrip(t, m)
		}
		if m, a, err := parseState(data); err == nil {
			if infoErr != nil {
				t.Fatalf("LoadState accepts what Inspect refuses: %v", infoErr)
			}
			if a.Step < 0 {
				t.Fatalf("step %d", a.Step)
			}
			checkModel(t, m, "param", m.Params)
			checkModel(t, m, "exp_avg", a.ExpAvg)
			checkModel(t, m, "exp_avg_sq", a.ExpAvgSq)
			b, err := encodeState(m, a)
			if err != nil {
				t.Fatalf("save of a loaded state: %v", err)
			}
			m2, a2, err := parseState(b)
			if err != nil {
				t.Fatalf("load of a saved state: %v", err)
			}
			if !m2.Arch.Equal(m.Arch) || !reflect.DeepEqual(m2.Meta, m.Meta) || a2.Step != a.Step {
				t.Fatalf("state round trip: arch, meta or step differ")
			}
			sameParams(t, m2.Params, m.Params)
			sameParams(t, a2.ExpAvg, a.ExpAvg)
			sameParams(t, a2.ExpAvgSq, a.ExpAvgSq)
		}
	})
}
