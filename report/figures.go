// Package report draws the notebook's figures for a trained model and
// writes them, with the run's settings and metrics, as one self-contained
// HTML page.
package report

import (
	"fmt"
	"image/color"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/latent-ai/latent/atomicfile"
	"github.com/latent-ai/latent/dataset"
	"github.com/latent-ai/latent/figures"
	"github.com/latent-ai/latent/latentstats"
)

// Codec encodes images and decodes codes; inference.Model is one.
type Codec interface {
	// Encode maps n images (n·C·H·W values) to n codes (n·b values).
	Encode(images []float32, n int) ([]float32, error)
	// Decode maps n codes to n images.
	Decode(codes []float32, n int) ([]float32, error)
	Bottleneck() int
	// ImageShape is the shape of one image, C×H×W.
	ImageShape() []int
}

// Figure is one PNG of the report, or a note in its place (File empty).
type Figure struct {
	File    string // the file name in the figures folder; "" for a note
	Title   string
	Caption string
}

// Inputs is what the figures are drawn from.
type Inputs struct {
	Codec Codec
	Train *dataset.Set // examples
	Test  *dataset.Set // reconstructions, interpolation, codes
	// TestCodes are the codes of Test, n·b values; Stats the Gaussian of
	// the training codes.
	TestCodes []float32
	Stats     *latentstats.Stats
	// TrainLoss and TestLoss hold one value per epoch. With neither (a
	// model imported from elsewhere), Draw makes no loss figure.
	TrainLoss, TestLoss []float64
	Seed                uint64
}

const scale = 3 // nearest-neighbour upscaling of the digits

// Draw writes every figure into dir and returns them in report order.
// Captions and headings follow what each figure shows: the number of
// components (a bottleneck of 1 has no grid), and the data set's class
// names (Fashion-MNIST's T-shirt, Trouser...) rather than "digit".
func Draw(dir string, in Inputs) ([]Figure, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("figures: %w", err)
	}
	class := "digit"
	if in.Test != nil && in.Test.Name != dataset.MNIST && !strings.HasPrefix(in.Test.Name, "mnist") {
		class = "class"
	}
	k := min(10, in.Stats.Dim)
	traversal := fmt.Sprintf("Along each of the top %d components", k)
	if k == 1 {
		traversal = "Along the one component"
	}
	const signs = " Each principal direction's sign is chosen so that its largest component is positive; the notebook takes torch.linalg.eigh's signs as they come, so its grid may be mirrored."
	steps := []struct {
		fig  Figure
		draw func(path string, in Inputs) error
	}{
		{Figure{"examples.png", "The first 10 training images", "with their labels"}, drawExamples},
		{Figure{"reconstructions.png", "Input, code and reconstruction",
			"as the notebook shows them: the first 10 training images (top), their codes as grayscale strips, each scaled on its own (black its lowest value, white its highest), and their decodings; below, the same for the first 10 test images"}, drawReconstructions},
		{Figure{"random.png", "Decoding random codes", "codes drawn from N(0, I) as the notebook does, and from the Gaussian fitted to the training codes, with their decodings"}, drawRandom},
		{Figure{"pca-grid.png", "The top 2 principal components", "decodings of mean + (i-5)·√λ₂·q₂ + (j-5)·√λ₁·q₁: row i along the second component, column j along the first." + signs}, drawPCAGrid},
		{Figure{"pca-traversal.png", traversal, "row k: decodings of mean + (j-5)·√λₖ·qₖ for j = 0…10." + signs}, drawTraversal},
		{Figure{"interpolation.png", "Interpolation", "decodings along the straight line between the codes of two test images of different " + class + "s"}, drawInterpolation},
		{Figure{"loss.png", "Loss per epoch", "mean training loss and test MSE after each epoch"}, drawLoss},
		{Figure{"codes.png", "Test codes on the top 2 principal components", "each dot a test image, coloured by its " + class}, drawCodes},
	}
	if in.Stats.Dim == 1 {
		steps[7].fig = Figure{"codes.png", "Test codes along the one component", "each dot a test image: its code across, its " + class + " up and down"}
	}
	var out []Figure
	for _, s := range steps {
		if s.fig.File == "loss.png" && len(in.TrainLoss)+len(in.TestLoss) == 0 {
			continue // no training history: an imported model
		}
		if s.fig.File == "pca-grid.png" && in.Stats.Dim < 2 {
			out = append(out, Figure{Title: "No grid of two components", Caption: "the bottleneck is 1: the codes have one principal component, so there is no plane to lay a grid on; the traversal below walks along it"})
			continue
		}
		if err := s.draw(filepath.Join(dir, s.fig.File), in); err != nil {
			return out, fmt.Errorf("%s: %w", s.fig.File, err)
		}
		out = append(out, s.fig)
	}
	return out, nil
}

// classNames returns the names of the labels 0-9 of the data set name:
// Fashion-MNIST's classes, or the digits.
func classNames(in Inputs) []string {
	if in.Test != nil && len(in.Test.Classes) > 0 {
		names := slices.Clone(in.Test.Classes)
		for len(names) < 10 {
			names = append(names, fmt.Sprint(len(names)))
		}
		return names
	}
	if in.Test != nil {
		if names := dataset.ClassNames(in.Test.Name); names != nil {
			return names
		}
	}
	return dataset.ClassNames(dataset.MNIST)
}

// digits returns the first n images of pix, each of the model's shape.
func digits(in Inputs, pix []float32, n int) []figures.Raster {
	shape := in.Codec.ImageShape()
	size := shape[0] * shape[1] * shape[2]
	r := make([]figures.Raster, n)
	for i := range r {
		r[i] = figures.Image(pix[i*size:(i+1)*size], shape)
	}
	return r
}

// strips returns n codes of b values as strips, each scaled on its own
// from its lowest value (black) to its highest (white), as the notebook's
// imshow of each code does.
func strips(codes []float32, n, b int) []figures.Raster {
	r := make([]figures.Raster, n)
	for i := range r {
		code := codes[i*b : (i+1)*b]
		lo, hi := float32(math.Inf(1)), float32(math.Inf(-1))
		for _, v := range code {
			lo, hi = min(lo, v), max(hi, v)
		}
		r[i] = figures.Strip(code, lo, hi)
	}
	return r
}

func save(path string, g figures.Grid, cells []figures.Raster) error {
	img, err := g.Draw(cells)
	if err != nil {
		return err
	}
	return figures.SavePNG(path, img)
}

func drawExamples(path string, in Inputs) error {
	g := figures.ImageGrid(1, 10, in.Codec.ImageShape(), scale)
	names := classNames(in)
	for i := 0; i < 10; i++ {
		l := int(in.Train.Labels[i])
		name := fmt.Sprint(l)
		if l < len(names) {
			name = names[l]
		}
		g.CellLabels = append(g.CellLabels, name)
	}
	return save(path, g, digits(in, in.Train.Floats(nil, 0, 10), 10))
}

// drawReconstructions draws what the notebook's figure shows, the first 10
// training images, their codes and their decodings, and below it the same
// for the first 10 test images.
func drawReconstructions(path string, in Inputs) error {
	b := in.Codec.Bottleneck()
	shape := in.Codec.ImageShape()
	trainImages := in.Train.Floats(nil, 0, 10)
	trainCodes, err := in.Codec.Encode(trainImages, 10)
	if err != nil {
		return err
	}
	var cells []figures.Raster
	for _, p := range []struct {
		images []float32
		codes  []float32
	}{{trainImages, trainCodes}, {in.Test.Floats(nil, 0, 10), in.TestCodes[:10*b]}} {
		recons, err := in.Codec.Decode(p.codes, 10)
		if err != nil {
			return err
		}
		cells = append(cells, digits(in, p.images, 10)...)
		cells = append(cells, strips(p.codes, 10, b)...)
		cells = append(cells, digits(in, recons, 10)...)
	}
	g := figures.ImageGrid(6, 10, shape, scale)
	g.RowLabels = []string{"train input", "code", "output", "test input", "code", "output"}
	return save(path, g, cells)
}

func drawRandom(path string, in Inputs) error {
	b := in.Codec.Bottleneck()
	rng := rand.New(rand.NewPCG(in.Seed, 1))
	normal := make([]float32, 10*b)
	for i := range normal {
		normal[i] = float32(rng.NormFloat64())
	}
	fitted := make([]float32, 0, 10*b)
	for _, z := range in.Stats.Sample(rng, 10) {
		for _, v := range z {
			fitted = append(fitted, float32(v))
		}
	}
	var cells []figures.Raster
	for _, codes := range [][]float32{normal, fitted} {
		images, err := in.Codec.Decode(codes, 10)
		if err != nil {
			return err
		}
		cells = append(cells, strips(codes, 10, b)...)
		cells = append(cells, digits(in, images, 10)...)
	}
	g := figures.ImageGrid(4, 10, in.Codec.ImageShape(), scale)
	g.RowLabels = []string{"N(0,I) code", "decoded", "fitted code", "decoded"}
	return save(path, g, cells)
}

// decodeAll decodes codes given as float64 vectors.
func decodeAll(c Codec, zs [][]float64) ([]float32, error) {
	flat := make([]float32, 0, len(zs)*c.Bottleneck())
	for _, z := range zs {
		for _, v := range z {
			flat = append(flat, float32(v))
		}
	}
	return c.Decode(flat, len(zs))
}

// PCAGridCodes returns the 121 codes of the 11×11 grid, row-major:
// mean + (i-5)·√λ₂·q₂ + (j-5)·√λ₁·q₁ at row i, column j.
func PCAGridCodes(s *latentstats.Stats) ([][]float64, error) {
	if s.Dim < 2 {
		return nil, fmt.Errorf("a grid along two components needs a bottleneck of 2 or more, not %d", s.Dim)
	}
	var zs [][]float64
	for i := 0; i < 11; i++ {
		for j := 0; j < 11; j++ {
			z := append([]float64(nil), s.Mean...)
			for d := range z {
				z[d] += float64(i-5)*math.Sqrt(max(0, s.Eigenvalues[1]))*s.Eigenvectors[1][d] +
					float64(j-5)*math.Sqrt(max(0, s.Eigenvalues[0]))*s.Eigenvectors[0][d]
			}
			zs = append(zs, z)
		}
	}
	return zs, nil
}

func drawPCAGrid(path string, in Inputs) error {
	zs, err := PCAGridCodes(in.Stats)
	if err != nil {
		return err
	}
	images, err := decodeAll(in.Codec, zs)
	if err != nil {
		return err
	}
	g := figures.ImageGrid(11, 11, in.Codec.ImageShape(), scale)
	for k := -5; k <= 5; k++ {
		g.ColLabels = append(g.ColLabels, fmt.Sprintf("%+d", k))
		g.RowLabels = append(g.RowLabels, fmt.Sprintf("%+d", k))
	}
	return save(path, g, digits(in, images, 121))
}

func drawTraversal(path string, in Inputs) error {
	rows := min(10, in.Stats.Dim)
	var zs [][]float64
	for k := 0; k < rows; k++ {
		for j := 0; j < 11; j++ {
			z, err := in.Stats.Along(k, float64(j-5))
			if err != nil {
				return err
			}
			zs = append(zs, z)
		}
	}
	images, err := decodeAll(in.Codec, zs)
	if err != nil {
		return err
	}
	g := figures.ImageGrid(rows, 11, in.Codec.ImageShape(), scale)
	for k := 0; k < rows; k++ {
		g.RowLabels = append(g.RowLabels, fmt.Sprintf("PC%d", k+1))
	}
	for j := -5; j <= 5; j++ {
		g.ColLabels = append(g.ColLabels, fmt.Sprintf("%+d", j))
	}
	return save(path, g, digits(in, images, rows*11))
}

// interpolationPairs picks three pairs of test images of different digits:
// the first images of digits (0,1), (4,9) and (3,8).
func interpolationPairs(labels []uint8) [][2]int {
	first := map[uint8]int{}
	for i := len(labels) - 1; i >= 0; i-- {
		first[labels[i]] = i
	}
	var pairs [][2]int
	for _, p := range [][2]uint8{{0, 1}, {4, 9}, {3, 8}} {
		a, okA := first[p[0]]
		b, okB := first[p[1]]
		if okA && okB {
			pairs = append(pairs, [2]int{a, b})
		}
	}
	return pairs
}

func drawInterpolation(path string, in Inputs) error {
	b := in.Codec.Bottleneck()
	pairs := interpolationPairs(in.Test.Labels)
	if len(pairs) == 0 {
		return fmt.Errorf("no two test images of different digits")
	}
	var codes []float32
	var g figures.Grid = figures.ImageGrid(len(pairs), 11, in.Codec.ImageShape(), scale)
	for _, p := range pairs {
		za, zb := in.TestCodes[p[0]*b:(p[0]+1)*b], in.TestCodes[p[1]*b:(p[1]+1)*b]
		for s := 0; s <= 10; s++ {
			t := float32(s) / 10
			for d := 0; d < b; d++ {
				codes = append(codes, (1-t)*za[d]+t*zb[d])
			}
		}
		g.RowLabels = append(g.RowLabels, fmt.Sprintf("%d to %d", in.Test.Labels[p[0]], in.Test.Labels[p[1]]))
	}
	for s := 0; s <= 10; s++ {
		g.ColLabels = append(g.ColLabels, fmt.Sprintf("%.1f", float64(s)/10))
	}
	images, err := in.Codec.Decode(codes, len(codes)/b)
	if err != nil {
		return err
	}
	return save(path, g, digits(in, images, len(codes)/b))
}

func savePlot(path string, p *plot.Plot, w, h vg.Length) error {
	c := vgimg.PngCanvas{Canvas: vgimg.New(w, h)}
	p.Draw(draw.New(c))
	return atomicfile.Write(path, 0o644, func(f *os.File) error {
		_, err := c.WriteTo(f)
		return err
	})
}

func drawLoss(path string, in Inputs) error {
	p := plot.New()
	p.Title.Text = "Loss per epoch"
	p.X.Label.Text = "epoch"
	p.Y.Label.Text = "MSE"
	for i, series := range [][]float64{in.TrainLoss, in.TestLoss} {
		if len(series) == 0 {
			continue
		}
		pts := make(plotter.XYs, len(series))
		for e, v := range series {
			pts[e] = plotter.XY{X: float64(e + 1), Y: v}
		}
		line, points, err := plotter.NewLinePoints(pts)
		if err != nil {
			return err
		}
		line.Color, points.Color = palette[i*3], palette[i*3]
		p.Add(line, points)
		p.Legend.Add([]string{"train loss", "test MSE"}[i], line, points)
	}
	p.Legend.Top = true
	p.Add(plotter.NewGrid())
	return savePlot(path, p, 6*vg.Inch, 4*vg.Inch)
}

// palette is ten distinguishable colours, one per digit.
var palette = []color.Color{
	color.RGBA{31, 119, 180, 255}, color.RGBA{255, 127, 14, 255}, color.RGBA{44, 160, 44, 255},
	color.RGBA{214, 39, 40, 255}, color.RGBA{148, 103, 189, 255}, color.RGBA{140, 86, 75, 255},
	color.RGBA{227, 119, 194, 255}, color.RGBA{127, 127, 127, 255}, color.RGBA{188, 189, 34, 255},
	color.RGBA{23, 190, 207, 255},
}

// drawCodes scatters the test codes on the top two principal components,
// coloured by class, or, for a bottleneck of 1, along the one component
// with the classes apart up and down. The legend sits in a margin the axes
// leave free on the right, so it covers no point, with markers larger than
// the points'.
func drawCodes(path string, in Inputs) error {
	b := in.Codec.Bottleneck()
	byClass := make([]plotter.XYs, 10)
	n := len(in.TestCodes) / b
	rng := rand.New(rand.NewPCG(in.Seed, 2))
	for i := 0; i < n; i++ {
		z := in.TestCodes[i*b : (i+1)*b]
		var x, y float64
		for d := range z {
			c := float64(z[d]) - in.Stats.Mean[d]
			x += c * in.Stats.Eigenvectors[0][d]
			if in.Stats.Dim > 1 {
				y += c * in.Stats.Eigenvectors[1][d]
			}
		}
		l := in.Test.Labels[i] % 10
		if in.Stats.Dim == 1 {
			y = float64(l) + 0.6*(rng.Float64()-0.5) // the class, jittered
		}
		byClass[l] = append(byClass[l], plotter.XY{X: x, Y: y})
	}
	p := plot.New()
	p.Title.Text = "Test codes on the top 2 principal components"
	p.X.Label.Text = "PC1"
	p.Y.Label.Text = "PC2"
	if in.Stats.Dim == 1 {
		p.Title.Text = "Test codes along the one component"
		p.Y.Label.Text = "class"
	}
	names := classNames(in)
	minX, maxX := math.Inf(1), math.Inf(-1)
	for l, pts := range byClass {
		if len(pts) == 0 {
			continue
		}
		s, err := plotter.NewScatter(pts)
		if err != nil {
			return err
		}
		s.GlyphStyle = draw.GlyphStyle{Color: palette[l], Radius: vg.Points(1.6), Shape: draw.CircleGlyph{}}
		p.Add(s)
		// The legend's marker: the class's colour, larger than a point.
		mark, _ := plotter.NewScatter(plotter.XYs{{}})
		mark.GlyphStyle = draw.GlyphStyle{Color: palette[l], Radius: vg.Points(4), Shape: draw.CircleGlyph{}}
		name := names[l]
		if len(names) > 10 { // more classes than colours: each colour is every tenth class
			name = fmt.Sprintf("%s, %s…", names[l], names[min(l+10, len(names)-1)])
		}
		p.Legend.Add(name, mark)
		for _, q := range pts {
			minX, maxX = min(minX, q.X), max(maxX, q.X)
		}
	}
	// Room on the right for the legend: the points end at 75% of the width.
	if maxX > minX {
		p.X.Min, p.X.Max = minX, maxX+(maxX-minX)/3
	}
	p.Legend.Top = true
	p.Legend.Padding = vg.Points(2)
	return savePlot(path, p, 7*vg.Inch, 6*vg.Inch)
}
