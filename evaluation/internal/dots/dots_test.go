package dots

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestTileAgainstFloat64 multiplies random blocks of every size around the
// kernels' panel sizes with each kernel, and checks every value against
// the float64 dot product within the bound of ErrorFactor, and that
// nothing outside the tile is written.
func TestTileAgainstFloat64(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, k := range All() {
		t.Run(k.Name, func(t *testing.T) {
			for _, sz := range []struct{ m, n, d int }{
				{1, 1, 1}, {3, 5, 7}, {k.MR, k.NR, 16}, {k.MR + 1, k.NR - 1, 33},
				{2*k.MR - 1, 2*k.NR + 3, 784}, {25, 70, 100}, {1, 40, 3},
			} {
				m, n, d := sz.m, sz.n, sz.d
				a := randRows(rng, m, d)
				b := randRows(rng, n, d)
				ldc := n + 3
				c := make([]float32, m*ldc)
				for i := range c {
					c[i] = -7
				}
				k.Tile(Pack(nil, a, nil, m, d, k.MR), m, Pack(nil, b, nil, n, d, k.NR), n, d, c, ldc)
				for i := range m {
					for j := range ldc {
						got := c[i*ldc+j]
						if j >= n {
							if got != -7 {
								t.Fatalf("%dx%dx%d: wrote c[%d][%d] outside the tile", m, n, d, i, j)
							}
							continue
						}
						var exact, abs float64
						for x := range d {
							p := float64(a[i*d+x]) * float64(b[j*d+x])
							exact += p
							abs += math.Abs(p)
						}
						if e := math.Abs(float64(got) - exact); e > ErrorFactor(d)*abs {
							t.Fatalf("%dx%dx%d: c[%d][%d] = %v, exact %v: error %.3g over the bound %.3g", m, n, d, i, j, got, exact, e, ErrorFactor(d)*abs)
						}
					}
				}
			}
		})
	}
}

// TestPackCentred checks that a centred pack holds x − centre in float32,
// and zeros past the last row.
func TestPackCentred(t *testing.T) {
	x := []float32{1, 2, 3, 4, 5, 6} // 3 rows of 2
	p := Pack(nil, x, []float32{0.5, 1e-9}, 3, 2, 2)
	if want := []float32{0.5, 2.5, 2 - 1e-9, 4 - 1e-9, 4.5, 0, 6 - 1e-9, 0}; !slices.Equal(p, want) {
		t.Errorf("packed %v, want %v", p, want)
	}
}

// TestPackBytes checks that packed bytes are b/255 as float32.
func TestPackBytes(t *testing.T) {
	x := make([]uint8, 256)
	for i := range x {
		x[i] = uint8(i)
	}
	p := PackBytes(nil, x, 2, 128, 3)
	if len(p) != PackedLen(2, 128, 3) || len(p) != 3*128 {
		t.Fatalf("packed %d values", len(p))
	}
	for k := range 128 {
		for r := range 3 {
			want := float32(0)
			if r < 2 {
				want = float32(r*128+k) / 255
			}
			if got := p[k*3+r]; got != want {
				t.Fatalf("row %d, value %d: %v, want %v", r, k, got, want)
			}
		}
	}
}

func randRows(rng *rand.Rand, n, d int) []float32 {
	x := make([]float32, n*d)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
		if i%5 == 0 {
			x[i] = 0
		}
	}
	return x
}

// BenchmarkTile times one tile of 240×256 rows of 784 values (MNIST's
// pixels) with each kernel and reports GFLOPS, two per multiply-add.
func BenchmarkTile(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	const m, n, d = 240, 256, 784
	x, y := randRows(rng, m, d), randRows(rng, n, d)
	for _, k := range All() {
		b.Run(k.Name, func(b *testing.B) {
			ap, bp := Pack(nil, x, nil, m, d, k.MR), Pack(nil, y, nil, n, d, k.NR)
			c := make([]float32, m*n)
			start := time.Now()
			for b.Loop() {
				k.Tile(ap, m, bp, n, d, c, n)
			}
			b.ReportMetric(2*float64(m*n*d)*float64(b.N)/time.Since(start).Seconds()/1e9, "GFLOPS")
		})
	}
}

func ExampleBest() {
	fmt.Println(Best().Name != "")
	// Output: true
}

// BenchmarkPack packs 256 rows of 784 values into panels of 32.
func BenchmarkPack(b *testing.B) {
	x := randRows(rand.New(rand.NewPCG(1, 2)), 256, 784)
	var dst []float32
	for b.Loop() {
		dst = Pack(dst, x, nil, 256, 784, 32)
	}
	b.SetBytes(256 * 784 * 4)
}
