// Package figures draws latent's pictures: grids of digits, code strips and
// labels, written as PNG.
//
// A figure is a Grid of cells. Each cell shows a small raster (an image of
// the model's input shape, a 28×28 digit for MNIST, or a 1×b code strip)
// upscaled with nearest neighbour, on a white page with thin gaps between
// cells. Rasters are grayscale, or colour for three channels. Values are in
// [0,1], 0 black and 1 white as MNIST stores them; values outside are
// clamped.
package figures

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"os"

	"github.com/latent-ai/latent/atomicfile"
	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// Raster is an image of W×H pixels with values in [0,1], row-major:
// grayscale (C 0 or 1, W·H values) or colour (C 3, three planes of W·H
// values: red, green, blue, as a model's C×H×W input). The figure only
// reads Pix.
type Raster struct {
	Pix  []float32
	W, H int
	C    int
}

// Image returns the raster of one image of shape C×H×W (its C·H·W values
// in pix): grayscale for one channel, colour for three.
func Image(pix []float32, shape []int) Raster {
	return Raster{Pix: pix, C: shape[0], H: shape[1], W: shape[2]}
}

// Strip returns a code of b values as a 1×b raster, each value mapped from
// [lo, hi] to [0, 1].
func Strip(code []float32, lo, hi float32) Raster {
	pix := make([]float32, len(code))
	for i, v := range code {
		if hi > lo {
			pix[i] = (v - lo) / (hi - lo)
		}
	}
	return Raster{Pix: pix, W: len(code), H: 1}
}

// Grid lays out Rows×Cols cells of CellW×CellH pixels each.
type Grid struct {
	Rows, Cols   int
	CellW, CellH int // pixels of a cell; ImageGrid sets the image's size·scale
	Gap          int // pixels between cells
	Title        string
	RowLabels    []string // left of each row
	ColLabels    []string // above each column
	CellLabels   []string // under each cell, row-major
}

// ImageGrid returns a grid of rows×cols images of shape C×H×W upscaled
// scale times, with gaps of 2 pixels.
func ImageGrid(rows, cols int, shape []int, scale int) Grid {
	return Grid{Rows: rows, Cols: cols, CellW: shape[2] * scale, CellH: shape[1] * scale, Gap: 2}
}

// DigitGrid returns a grid of rows×cols MNIST digits (28×28) upscaled scale
// times, with gaps of 2 pixels.
func DigitGrid(rows, cols, scale int) Grid { return ImageGrid(rows, cols, []int{1, 28, 28}, scale) }

var face font.Face = basicfont.Face7x13

const (
	margin  = 6
	lineH   = 15 // the height of a line of text
	charW   = 7
	padText = 4
)

func (g Grid) labelW() int {
	w := 0
	for _, s := range g.RowLabels {
		w = max(w, len(s)*charW+padText)
	}
	return w
}

func (g Grid) topH() int {
	h := 0
	if g.Title != "" {
		h += lineH + padText
	}
	if len(g.ColLabels) > 0 {
		h += lineH
	}
	return h
}

func (g Grid) cellLabelH() int {
	if len(g.CellLabels) > 0 {
		return lineH
	}
	return 0
}

// Size returns the width and height of the figure in pixels.
func (g Grid) Size() (w, h int) {
	w = 2*margin + g.labelW() + g.Cols*g.CellW + (g.Cols-1)*g.Gap
	h = 2*margin + g.topH() + g.Rows*(g.CellH+g.cellLabelH()) + (g.Rows-1)*g.Gap
	return w, h
}

// Cell returns the rectangle of the cell at row r and column c.
func (g Grid) Cell(r, c int) image.Rectangle {
	x := margin + g.labelW() + c*(g.CellW+g.Gap)
	y := margin + g.topH() + r*(g.CellH+g.cellLabelH()+g.Gap)
	return image.Rect(x, y, x+g.CellW, y+g.CellH)
}

// Draw renders the grid with cells[r*Cols+c] in each cell; a cell whose
// raster is empty stays blank. A raster is upscaled by the largest whole
// factor that fits the cell and centred in it.
func (g Grid) Draw(cells []Raster) (*image.RGBA, error) {
	if g.Rows < 1 || g.Cols < 1 || g.CellW < 1 || g.CellH < 1 {
		return nil, fmt.Errorf("figure grid %dx%d of %dx%d cells: want positive sizes", g.Rows, g.Cols, g.CellW, g.CellH)
	}
	if len(cells) > g.Rows*g.Cols {
		return nil, fmt.Errorf("%d cells for a %dx%d grid", len(cells), g.Rows, g.Cols)
	}
	w, h := g.Size()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)
	y := margin
	if g.Title != "" {
		text(img, margin, y, g.Title)
		y += lineH + padText
	}
	for c, s := range g.ColLabels {
		if c < g.Cols {
			r := g.Cell(0, c)
			text(img, r.Min.X+(g.CellW-len(s)*charW)/2, y, s)
		}
	}
	for r, s := range g.RowLabels {
		if r < g.Rows {
			cell := g.Cell(r, 0)
			text(img, margin, cell.Min.Y+(g.CellH-lineH)/2, s)
		}
	}
	for i, cell := range cells {
		rect := g.Cell(i/g.Cols, i%g.Cols)
		if err := paint(img, rect, cell); err != nil {
			return nil, fmt.Errorf("cell %d: %w", i, err)
		}
		if i < len(g.CellLabels) {
			s := g.CellLabels[i]
			text(img, rect.Min.X+(g.CellW-len(s)*charW)/2, rect.Max.Y+1, s)
		}
	}
	return img, nil
}

// paint draws a raster into rect, upscaled and centred.
func paint(img *image.RGBA, rect image.Rectangle, r Raster) error {
	if len(r.Pix) == 0 {
		return nil
	}
	planes := max(r.C, 1)
	if r.W < 1 || r.H < 1 || (planes != 1 && planes != 3) || len(r.Pix) != planes*r.W*r.H {
		return fmt.Errorf("raster %dx%d of %d channels with %d values", r.W, r.H, planes, len(r.Pix))
	}
	s := max(1, min(rect.Dx()/r.W, rect.Dy()/r.H))
	x0 := rect.Min.X + (rect.Dx()-s*r.W)/2
	y0 := rect.Min.Y + (rect.Dy()-s*r.H)/2
	// A dark frame shows where a cell ends when its content is white.
	frame := image.Rect(x0-1, y0-1, x0+s*r.W+1, y0+s*r.H+1).Intersect(img.Bounds())
	draw.Draw(img, frame, image.NewUniform(color.Gray{Y: 160}), image.Point{}, draw.Src)
	for y := 0; y < r.H; y++ {
		for x := 0; x < r.W; x++ {
			var c color.Color = color.Gray{Y: gray(r.Pix[y*r.W+x])}
			if planes == 3 {
				n := r.W * r.H
				c = color.RGBA{gray(r.Pix[y*r.W+x]), gray(r.Pix[n+y*r.W+x]), gray(r.Pix[2*n+y*r.W+x]), 255}
			}
			draw.Draw(img, image.Rect(x0+x*s, y0+y*s, x0+(x+1)*s, y0+(y+1)*s), image.NewUniform(c), image.Point{}, draw.Src)
		}
	}
	return nil
}

func gray(v float32) uint8 {
	if math.IsNaN(float64(v)) || v <= 0 {
		return 0
	}
	if v >= 1 {
		return 255
	}
	return uint8(v*255 + 0.5)
}

// text draws s with its top-left corner at (x, y).
func text(img *image.RGBA, x, y int, s string) {
	d := font.Drawer{Dst: img, Src: image.Black, Face: face,
		Dot: fixed.P(x, y+face.Metrics().Ascent.Ceil())}
	d.DrawString(s)
}

// SavePNG writes img to path as PNG, atomically.
func SavePNG(path string, img image.Image) error {
	return atomicfile.Write(path, 0o644, func(f *os.File) error { return png.Encode(f, img) })
}
