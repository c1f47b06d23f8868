package trainer

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/latent-ai/latent/models"
)

func TestParseLRScale(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want map[string]float64
		err  string
	}{
		{"", nil, ""},
		{" ", nil, ""},
		{"encoder.7.weight=0.1", map[string]float64{"encoder.7.weight": 0.1}, ""},
		{"encoder.7.weight=0.1, decoder.2=3", map[string]float64{"encoder.7.weight": 0.1, "decoder.2": 3}, ""},
		{"encoder.7", nil, "want NAME=FACTOR"},
		{"=2", nil, "want NAME=FACTOR"},
		{"encoder.7=0", nil, "positive number"},
		{"encoder.7=-1", nil, "positive number"},
		{"encoder.7=NaN", nil, "positive number"},
		{"encoder.7=Inf", nil, "positive number"},
		{"encoder.7=x", nil, "positive number"},
		{"encoder.7=1,encoder.7=2", nil, "given twice"},
	} {
		got, err := ParseLRScale(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseLRScale(%q) = %v, %v; want an error with %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || len(got) != len(tc.want) {
			t.Errorf("ParseLRScale(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			continue
		}
		for k, v := range tc.want {
			if got[k] != v {
				t.Errorf("ParseLRScale(%q)[%s] = %v, want %v", tc.in, k, got[k], v)
			}
		}
		if back, _ := ParseLRScale(LRScaleString(got)); len(back) != len(got) {
			t.Errorf("LRScaleString(%v) = %q does not read back", got, LRScaleString(got))
		}
	}
}

// TestLRScaleNames checks which parameters a factor reaches: a module's
// name reaches its weight and bias, a parameter's own name only it and
// over its module's; an unknown name is an error that lists the names.
func TestLRScaleNames(t *testing.T) {
	arch, _ := models.New("conv", 10)
	index := map[string]int{}
	for i, p := range arch.Params() {
		index[p.Name] = i
	}
	for _, tc := range []struct {
		scales map[string]float64
		want   map[string]float32 // the others stay 1
	}{
		{map[string]float64{"encoder.7": 0.5}, map[string]float32{"encoder.7.weight": 0.5, "encoder.7.bias": 0.5}},
		{map[string]float64{"encoder.7.weight": 0.1}, map[string]float32{"encoder.7.weight": 0.1}},
		{map[string]float64{"encoder.7": 2, "encoder.7.weight": 0.5}, map[string]float32{"encoder.7.weight": 0.5, "encoder.7.bias": 2}},
		{map[string]float64{"decoder.5": 3, "encoder.0.bias": 0.25}, map[string]float32{"decoder.5.weight": 3, "decoder.5.bias": 3, "encoder.0.bias": 0.25}},
	} {
		got, err := lrScales(arch, tc.scales)
		if err != nil {
			t.Fatalf("%v: %v", tc.scales, err)
		}
		for name, i := range index {
			want, ok := tc.want[name]
			if !ok {
				want = 1
			}
			if got[i] != want {
				t.Errorf("%v: %s gets %v, want %v", tc.scales, name, got[i], want)
			}
		}
	}
	if got, err := lrScales(arch, nil); got != nil || err != nil {
		t.Errorf("no factors: %v, %v; want nil", got, err)
	}
	_, err := lrScales(arch, map[string]float64{"encoder.8": 0.5}) // a ReLU: no parameters
	if err == nil || !strings.Contains(err.Error(), "encoder.7.weight") {
		t.Errorf("a module without parameters: %v; want an error that lists the parameters", err)
	}
	cfg := DefaultConfig(arch)
	cfg.WeightDecay, cfg.LRScale = 100, map[string]float64{"encoder.7": 20} // lr·factor·decay = 2: a step would flip the weights' signs
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "lr·factor·decay below 1") {
		t.Errorf("New took a decay step of 2: %v", err)
	}
	for _, f := range []float64{-1, 0, 1e-50, 1e40, math.NaN()} {
		cfg := DefaultConfig(arch)
		cfg.LRScale = map[string]float64{"encoder.7": f}
		if _, err := New(cfg); err == nil {
			t.Errorf("New took a factor of %v", f)
		}
	}
}

// TestLRScaleScalesSteps takes one step of the classic model from the same
// weights with and without factors: a factor f moves its parameter by f
// times the step without it (to a float32 rounding of the weights), and
// leaves every other parameter's bits alone; a factor of 1 changes no bit.
func TestLRScaleScalesSteps(t *testing.T) {
	train, _ := realMNIST(t)
	images := floats(firstN(train, 64))
	arch, _ := models.New("classic", 10)
	step := func(scales map[string]float64) ([][]float32, [][]float32) {
		cfg := DefaultConfig(arch)
		cfg.WeightDecay = 0.5 // so that the decay's step is scaled too
		cfg.LRScale = scales
		tr, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		var before [][]float32
		for _, v := range tr.w.Values {
			before = append(before, slices.Clone(v))
		}
		if _, err := tr.Step(images, 64); err != nil {
			t.Fatal(err)
		}
		return before, tr.w.Values
	}
	before, plain := step(nil)
	_, one := step(map[string]float64{"encoder.2": 1})
	_, scaled := step(map[string]float64{"encoder.0.weight": 0.25, "decoder.4": 3})
	factor := map[string]float64{"encoder.0.weight": 0.25, "decoder.4.weight": 3, "decoder.4.bias": 3}
	for i, p := range arch.Params() {
		for j := range plain[i] {
			if math.Float32bits(one[i][j]) != math.Float32bits(plain[i][j]) {
				t.Fatalf("a factor of 1 changed %s[%d]: %v, without it %v", p.Name, j, one[i][j], plain[i][j])
			}
		}
		f, ok := factor[p.Name]
		if !ok {
			for j := range plain[i] {
				if math.Float32bits(scaled[i][j]) != math.Float32bits(plain[i][j]) {
					t.Fatalf("%s[%d] has no factor but moved to %v, not %v", p.Name, j, scaled[i][j], plain[i][j])
				}
			}
			continue
		}
		var worst, largest float64
		for j := range plain[i] {
			d0, d := float64(plain[i][j])-float64(before[i][j]), float64(scaled[i][j])-float64(before[i][j])
			worst = max(worst, math.Abs(d-f*d0))
			largest = max(largest, math.Abs(f*d0))
		}
		// The weights are under 0.05 and float32 keeps 24 bits: a weight
		// is within 3e-9 of its exact value, so each plain step is within
		// 6e-9 of its own, f times that after scaling, and the scaled step
		// within 6e-9 of its own: (1+f)·1e-8 bounds the two. A missing
		// factor is off by a whole step, 1e-3 or so.
		if largest == 0 || worst > (1+f)*1e-8 {
			t.Errorf("%s: the step with factor %v is %.3g from %v times the plain step (its largest value %.3g)", p.Name, f, worst, f, largest)
		}
	}
}
