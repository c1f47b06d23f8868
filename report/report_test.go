package report

import (
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/latent-ai/latent/dataset"
	"github.com/latent-ai/latent/latentstats"
	"github.com/latent-ai/latent/pca"
)

// fakeCodec decodes a code into an image whose every pixel is the sigmoid
// of the code's first value, and encodes an image into its mean pixel
// repeated; enough to check what the figures ask of a model.
type fakeCodec struct{ b int }

func (f fakeCodec) Bottleneck() int { return f.b }

func (f fakeCodec) ImageShape() []int { return []int{1, 28, 28} }

func (f fakeCodec) Encode(images []float32, n int) ([]float32, error) {
	out := make([]float32, 0, n*f.b)
	for i := 0; i < n; i++ {
		var s float32
		for _, v := range images[i*784 : (i+1)*784] {
			s += v
		}
		for d := 0; d < f.b; d++ {
			out = append(out, s/784)
		}
	}
	return out, nil
}

func (f fakeCodec) Decode(codes []float32, n int) ([]float32, error) {
	out := make([]float32, 0, n*784)
	for i := 0; i < n; i++ {
		v := float32(1 / (1 + math.Exp(-float64(codes[i*f.b]))))
		for j := 0; j < 784; j++ {
			out = append(out, v)
		}
	}
	return out, nil
}

func knownStats(t *testing.T) *latentstats.Stats {
	t.Helper()
	// Codes spread along x with variance 4 and along y with variance 1.
	var codes []float32
	for i := -50; i <= 50; i++ {
		for j := -1; j <= 1; j += 2 {
			codes = append(codes, float32(2*i)/29.15, float32(j), 0.5)
		}
	}
	s, err := pca.Fit(codes, len(codes)/3, 3)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestPCAGridCodes(t *testing.T) {
	s := knownStats(t)
	zs, err := PCAGridCodes(s)
	if err != nil {
		t.Fatal(err)
	}
	if len(zs) != 121 {
		t.Fatalf("%d codes, want 121", len(zs))
	}
	// The centre is the mean; one step right moves sqrt(λ1) along q1, one
	// step down sqrt(λ2) along q2.
	centre := zs[5*11+5]
	for d := range centre {
		if math.Abs(centre[d]-s.Mean[d]) > 1e-12 {
			t.Fatalf("centre %v, mean %v", centre, s.Mean)
		}
	}
	step := func(a, b []float64) float64 {
		var n float64
		for d := range a {
			n += (a[d] - b[d]) * (a[d] - b[d])
		}
		return math.Sqrt(n)
	}
	if got, want := step(zs[5*11+6], centre), math.Sqrt(s.Eigenvalues[0]); math.Abs(got-want) > 1e-9 {
		t.Errorf("column step %g, want sqrt(λ1) = %g", got, want)
	}
	if got, want := step(zs[6*11+5], centre), math.Sqrt(s.Eigenvalues[1]); math.Abs(got-want) > 1e-9 {
		t.Errorf("row step %g, want sqrt(λ2) = %g", got, want)
	}
	if got, want := step(zs[0], centre), 5*math.Hypot(math.Sqrt(s.Eigenvalues[0]), math.Sqrt(s.Eigenvalues[1])); math.Abs(got-want) > 1e-9 {
		t.Errorf("corner distance %g, want %g", got, want)
	}
}

// TestDrawAndHTML draws every figure with a fake model and checks the files,
// their sizes, and that the page embeds them all.
func TestDrawAndHTML(t *testing.T) {
	const n = 40
	set := &dataset.Set{Name: "synthetic", N: n, Rows: 28, Cols: 28, Pixels: make([]uint8, n*784), Labels: make([]uint8, n)}
	for i := range set.Labels {
		set.Labels[i] = uint8(i % 10)
		for j := 0; j < 784; j++ {
			set.Pixels[i*784+j] = uint8((i + j) % 7 * 255 / 7)
		}
	}
	c := fakeCodec{b: 3}
	codes, _ := c.Encode(set.Floats(nil, 0, n), n)
	dir := t.TempDir()
	figs, err := Draw(dir, Inputs{Codec: c, Train: set, Test: set, TestCodes: codes, Stats: knownStats(t),
		TrainLoss: []float64{0.05, 0.03}, TestLoss: []float64{0.04, 0.02}, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(figs) != 8 {
		t.Fatalf("%d figures, want 8", len(figs))
	}
	sizes := map[string][2]int{
		// 11 columns of 84 pixels, 10 gaps of 2, 6-pixel margins and a
		// column of row labels ("+5": 2·7 pixels plus 4); a line of
		// column labels above.
		"pca-grid.png":      {12 + 18 + 11*84 + 20, 12 + 15 + 11*84 + 20},
		"pca-traversal.png": {12 + 25 + 11*84 + 20, 12 + 15 + 3*84 + 4}, // rows "PC1"…; a bottleneck of 3 gives 3 rows
		"examples.png":      {12 + 10*84 + 18, 12 + 84 + 15},
	}
	for _, f := range figs {
		file, err := os.Open(filepath.Join(dir, f.File))
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := png.DecodeConfig(file)
		file.Close()
		if err != nil {
			t.Fatalf("%s: %v", f.File, err)
		}
		if want, ok := sizes[f.File]; ok && (cfg.Width != want[0] || cfg.Height != want[1]) {
			t.Errorf("%s: %dx%d, want %dx%d", f.File, cfg.Width, cfg.Height, want[0], want[1])
		}
	}
	index := filepath.Join(dir, "index.html")
	samples := &Table{Caption: "against <the test images>", Header: []string{"codes", "precision", "0"},
		Rows: [][]string{{"N(0, I)", "0.5", "10%"}, {"fitted", "0.9", "11%"}}}
	if err := WriteHTML(index, dir, Page{Title: "t", Settings: [][2]string{{"model", "classic"}}, Samples: samples, Figures: figs}); err != nil {
		t.Fatal(err)
	}
	html, _ := os.ReadFile(index)
	if got := strings.Count(string(html), `src="data:image/png;base64,`); got != 8 {
		t.Errorf("%d embedded images, want 8", got)
	}
	for _, want := range []string{"<h2>Sample quality</h2>\n<p>against &lt;the test images&gt;</p>",
		"<tr><th>codes</th><th>precision</th><th>0</th></tr>", `<tr><th>fitted</th><td class="num">0.9</td><td class="num">11%</td></tr>`} {
		if !strings.Contains(string(html), want) {
			t.Errorf("the page lacks %q", want)
		}
	}
}

// TestBottleneckOneAndClassNames draws the figures of a model with a
// bottleneck of 1 on a set named fashion-mnist: no grid, with a note that
// says why, a traversal of one row, a scatter along the one component, and
// Fashion-MNIST's class names instead of digits.
func TestBottleneckOneAndClassNames(t *testing.T) {
	const n = 40
	set := &dataset.Set{Name: dataset.FashionMNIST, N: n, Rows: 28, Cols: 28, Pixels: make([]uint8, n*784), Labels: make([]uint8, n)}
	for i := range set.Labels {
		set.Labels[i] = uint8(i % 10)
		for j := 0; j < 784; j++ {
			set.Pixels[i*784+j] = uint8((i*3 + j) % 11 * 255 / 11)
		}
	}
	c := fakeCodec{b: 1}
	codes, _ := c.Encode(set.Floats(nil, 0, n), n)
	stats, err := pca.Fit(codes, n, 1)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	figs, err := Draw(dir, Inputs{Codec: c, Train: set, Test: set, TestCodes: codes, Stats: stats, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	var titles []string
	for _, f := range figs {
		titles = append(titles, f.Title)
		if f.File == "pca-grid.png" {
			t.Error("a grid of two components for a bottleneck of 1")
		}
		if strings.Contains(f.Caption, "digit") {
			t.Errorf("%s speaks of digits for Fashion-MNIST: %q", f.File, f.Caption)
		}
	}
	all := strings.Join(titles, " | ")
	for _, want := range []string{"No grid of two components", "Along the one component", "Test codes along the one component"} {
		if !strings.Contains(all, want) {
			t.Errorf("headings %q lack %q", all, want)
		}
	}
	if got := classNames(Inputs{Test: set}); got[0] != "T-shirt/top" || got[9] != "Ankle boot" {
		t.Errorf("class names %v", got)
	}
	index := filepath.Join(dir, "index.html")
	if err := WriteHTML(index, dir, Page{Title: "t", Figures: figs}); err != nil {
		t.Fatal(err)
	}
	html, _ := os.ReadFile(index)
	if !strings.Contains(string(html), "there is no plane to lay a grid on") {
		t.Error("the page does not say why there is no grid")
	}
}

// TestStripsScaledEach checks that each code strip spans black to white on
// its own, as the notebook's imshow of each code does.
func TestStripsScaledEach(t *testing.T) {
	codes := []float32{0, 1, 2, 100, 200, 300}
	for i, s := range strips(codes, 2, 3) {
		if s.Pix[0] != 0 || s.Pix[2] != 1 {
			t.Errorf("strip %d: %v, want from 0 to 1", i, s.Pix)
		}
	}
}
