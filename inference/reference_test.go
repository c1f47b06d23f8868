package inference_test

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/latent-ai/latent/checkpoint"
	"github.com/latent-ai/latent/inference"
	"github.com/latent-ai/latent/models"
)

// forward runs one sample x through layers, of modules mods, in float64,
// with straightforward loops over the declaration and the weights in
// PyTorch layout. shape is the per-sample shape of x.
func forward(m *checkpoint.Model, mods []string, layers []models.Layer, x []float64, shape []int) []float64 {
	for i, l := range layers {
		w := m.Params[mods[i]+".weight"]
		b := m.Params[mods[i]+".bias"]
		next, _ := l.OutShape(shape)
		switch l.Op {
		case models.Linear:
			y := make([]float64, l.Out)
			for o := range y {
				s := float64(b[o])
				for j := 0; j < l.In; j++ {
					s += float64(w[o*l.In+j]) * x[j]
				}
				y[o] = s
			}
			x = y
		case models.Conv2d:
			x = conv2d(l, w, b, x, shape, next)
		case models.ConvTranspose2d:
			x = convTranspose2d(l, w, b, x, shape, next)
		case models.MaxPool2d:
			x = maxPool(l, x, shape, next)
		case models.ReLU:
			for j := range x {
				x[j] = math.Max(x[j], 0)
			}
		case models.Sigmoid:
			for j := range x {
				x[j] = 1 / (1 + math.Exp(-x[j]))
			}
		case models.Flatten, models.Unflatten:
			// Row-major data: only the shape changes.
		default:
			panic("reference: unknown op " + string(l.Op))
		}
		shape = next
	}
	return x
}

func conv2d(l models.Layer, w []float32, b []float32, x []float64, in, out []int) []float64 {
	ic, ih, iw := in[0], in[1], in[2]
	oc, oh, ow := out[0], out[1], out[2]
	k, s, p := l.Kernel, l.Stride, l.Pad
	y := make([]float64, oc*oh*ow)
	for o := 0; o < oc; o++ {
		for r := 0; r < oh; r++ {
			for c := 0; c < ow; c++ {
				sum := float64(b[o])
				for i := 0; i < ic; i++ {
					for kr := 0; kr < k; kr++ {
						for kc := 0; kc < k; kc++ {
							yr, yc := r*s+kr-p, c*s+kc-p
							if yr < 0 || yr >= ih || yc < 0 || yc >= iw {
								continue
							}
							sum += float64(w[((o*ic+i)*k+kr)*k+kc]) * x[(i*ih+yr)*iw+yc]
						}
					}
				}
				y[(o*oh+r)*ow+c] = sum
			}
		}
	}
	return y
}

// convTranspose2d scatters each input value through the kernel; the weight
// is [in, out, k, k].
func convTranspose2d(l models.Layer, w []float32, b []float32, x []float64, in, out []int) []float64 {
	ic, ih, iw := in[0], in[1], in[2]
	oc, oh, ow := out[0], out[1], out[2]
	k, s, p := l.Kernel, l.Stride, l.Pad
	y := make([]float64, oc*oh*ow)
	for o := 0; o < oc; o++ {
		for j := 0; j < oh*ow; j++ {
			y[o*oh*ow+j] = float64(b[o])
		}
	}
	for i := 0; i < ic; i++ {
		for r := 0; r < ih; r++ {
			for c := 0; c < iw; c++ {
				v := x[(i*ih+r)*iw+c]
				for o := 0; o < oc; o++ {
					for kr := 0; kr < k; kr++ {
						for kc := 0; kc < k; kc++ {
							yr, yc := r*s+kr-p, c*s+kc-p
							if yr < 0 || yr >= oh || yc < 0 || yc >= ow {
								continue
							}
							y[(o*oh+yr)*ow+yc] += v * float64(w[((i*oc+o)*k+kr)*k+kc])
						}
					}
				}
			}
		}
	}
	return y
}

func maxPool(l models.Layer, x []float64, in, out []int) []float64 {
	ih, iw := in[1], in[2]
	ch, oh, ow := out[0], out[1], out[2]
	y := make([]float64, ch*oh*ow)
	for c := 0; c < ch; c++ {
		for r := 0; r < oh; r++ {
			for q := 0; q < ow; q++ {
				best := math.Inf(-1)
				for kr := 0; kr < l.Kernel; kr++ {
					for kc := 0; kc < l.Kernel; kc++ {
						best = math.Max(best, x[(c*ih+r*l.Stride+kr)*iw+q*l.Stride+kc])
					}
				}
				y[(c*oh+r)*ow+q] = best
			}
		}
	}
	return y
}

// reference runs n samples through a part of m with forward.
func reference(m *checkpoint.Model, part string, x []float32, n int) []float64 {
	shapes := m.Arch.Shapes(part)
	layers, mods := m.Arch.Layers(part), m.Arch.Modules(part)
	if part == models.Encoder && m.Arch.Variational {
		// The code of a VAE is μ: its head ends the encoder.
		layers = append(slices.Clone(layers), m.Arch.Heads()[0])
		mods = append(mods, models.HeadMu)
	}
	size := len(x) / n
	var out []float64
	for i := 0; i < n; i++ {
		in := make([]float64, size)
		for j := range in {
			in[j] = float64(x[i*size+j])
		}
		out = append(out, forward(m, mods, layers, in, shapes[0])...)
	}
	return out
}

func maxDiff(got []float32, want []float64) (float64, int) {
	worst, at := 0.0, -1
	for i := range want {
		if d := math.Abs(float64(got[i]) - want[i]); d > worst || math.IsNaN(d) {
			worst, at = d, i
		}
	}
	return worst, at
}

// TestMatchesReference compares ONNX Runtime with the plain Go forward pass
// on real MNIST test images, for both architectures, through chunked runs.
func TestMatchesReference(t *testing.T) {
	n := 300
	if raceEnabled {
		n = 40
	}
	images := mnistTest(t, n)
	for _, kind := range models.Kinds() {
		t.Run(kind, func(t *testing.T) {
			m, dir := exportRandom(t, kind, 10, false)
			model := openRun(t, dir, inference.Options{MaxBatch: 128})

			codes, err := model.Encode(images, n)
			if err != nil {
				t.Fatal(err)
			}
			if len(codes) != n*10 {
				t.Fatalf("%d code values, want %d", len(codes), n*10)
			}
			wantCodes := reference(m, "encoder", images, n)
			if d, at := maxDiff(codes, wantCodes); d > 1e-4 {
				t.Fatalf("codes differ from the reference by %g at %d (%v vs %v)", d, at, codes[at], wantCodes[at])
			} else {
				t.Logf("codes: max difference %.2g", d)
			}
			spread := 0.0
			for _, v := range wantCodes {
				spread = math.Max(spread, math.Abs(v))
			}
			if spread == 0 {
				t.Fatal("all reference codes are 0: the test compares nothing")
			}

			// Decode the codes the encoder gave, and codes from N(0, 3²),
			// which drive the sigmoid well away from 0.5.
			rng := rand.New(rand.NewPCG(1, 2))
			wide := make([]float32, n*10)
			for i := range wide {
				wide[i] = float32(3 * rng.NormFloat64())
			}
			for name, c := range map[string][]float32{"encoder codes": codes, "wide codes": wide} {
				imgs, err := model.Decode(c, n)
				if err != nil {
					t.Fatal(err)
				}
				if len(imgs) != n*784 {
					t.Fatalf("%d image values, want %d", len(imgs), n*784)
				}
				want := reference(m, "decoder", c, n)
				if d, at := maxDiff(imgs, want); d > 1e-5 {
					t.Fatalf("%s: images differ from the reference by %g at %d", name, d, at)
				} else {
					t.Logf("%s: images: max difference %.2g", name, d)
				}
			}
		})
	}
}

// TestEncodeDistribution checks a VAE encoder's two outputs against the
// plain Go forward pass through each head, and that a plain autoencoder
// has no distribution to give.
func TestEncodeDistribution(t *testing.T) {
	const n = 50
	images := mnistTest(t, n)
	for _, kind := range []string{"classic-vae", "conv-vae"} {
		t.Run(kind, func(t *testing.T) {
			m, dir := exportRandom(t, kind, 10, false)
			model := openRun(t, dir, inference.Options{MaxBatch: 16})
			if !model.Variational() {
				t.Fatal("a VAE's model says it is not variational")
			}
			mu, logVar, err := model.EncodeDistribution(images, n)
			if err != nil {
				t.Fatal(err)
			}
			codes, err := model.Encode(images, n)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(codes, mu) {
				t.Error("Encode does not give EncodeDistribution's mu")
			}
			enc, mods := m.Arch.Encoder, m.Arch.Modules(models.Encoder)
			shapes := m.Arch.Shapes(models.Encoder)
			size := len(images) / n
			for k, mod := range []string{models.HeadMu, models.HeadLogVar} {
				got := [][]float32{mu, logVar}[k]
				var want []float64
				for i := 0; i < n; i++ {
					in := make([]float64, size)
					for j := range in {
						in[j] = float64(images[i*size+j])
					}
					want = append(want, forward(m, append(slices.Clone(mods), mod),
						append(slices.Clone(enc), m.Arch.Heads()[k]), in, shapes[0])...)
				}
				if d, at := maxDiff(got, want); d > 1e-4 {
					t.Errorf("%s differs from the reference by %g at %d", mod, d, at)
				}
			}
		})
	}
	_, dir := exportRandom(t, "classic", 10, false)
	plain := openRun(t, dir, inference.Options{})
	if plain.Variational() {
		t.Error("a plain autoencoder says it is variational")
	}
	if _, _, err := plain.EncodeDistribution(images, n); err == nil || !strings.Contains(err.Error(), "plain autoencoder") {
		t.Errorf("EncodeDistribution of a plain autoencoder: %v", err)
	}
}
