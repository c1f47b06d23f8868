package figures

import (
	"image"
	"image/color"
	"path/filepath"
	"testing"

	"image/png"
	"os"
)

func TestGridGeometry(t *testing.T) {
	cases := []struct {
		name   string
		g      Grid
		w, h   int
		cell11 image.Rectangle
	}{
		// 2·6 margins + 11 cells of 112 + 10 gaps of 2 = 1264 on both sides.
		{"pca grid", DigitGrid(11, 11, 4), 1264, 1264, image.Rect(6+114, 6+114, 6+114+112, 6+114+112)},
		// Column labels add a line of 15 pixels above the cells, cell
		// labels one of 15 under every row.
		{"labelled", Grid{Rows: 2, Cols: 3, CellW: 56, CellH: 56, Gap: 2, ColLabels: []string{"a", "b", "c"}, CellLabels: []string{"1"}},
			12 + 3*56 + 2*2, 12 + 15 + 2*(56+15) + 2, image.Rect(6+58, 6+15+56+15+2, 6+58+56, 6+15+56+15+2+56)},
		// Row labels take the width of the longest, 7 pixels a character plus 4.
		{"row labels", Grid{Rows: 3, Cols: 10, CellW: 28, CellH: 28, Gap: 1, RowLabels: []string{"input", "code", "output"}, Title: "t"},
			12 + 46 + 10*28 + 9, 12 + 19 + 3*28 + 2, image.Rect(6+46+29, 6+19+29, 6+46+29+28, 6+19+29+28)},
	}
	for _, tc := range cases {
		w, h := tc.g.Size()
		if w != tc.w || h != tc.h {
			t.Errorf("%s: size %dx%d, want %dx%d", tc.name, w, h, tc.w, tc.h)
		}
		if got := tc.g.Cell(1, 1); got != tc.cell11 {
			t.Errorf("%s: cell (1,1) at %v, want %v", tc.name, got, tc.cell11)
		}
		img, err := tc.g.Draw(nil)
		if err != nil {
			t.Fatal(err)
		}
		if img.Bounds().Dx() != w || img.Bounds().Dy() != h {
			t.Errorf("%s: drawn %v, want %dx%d", tc.name, img.Bounds(), w, h)
		}
	}
}

// TestDigitPixels draws a digit whose pixels are known and reads the
// upscaled pixels back from the PNG.
func TestDigitPixels(t *testing.T) {
	pix := make([]float32, 784)
	pix[0] = 1      // top-left white
	pix[28+1] = 0.5 // (row 1, col 1) mid gray
	pix[783] = 2    // clamped to white
	g := DigitGrid(1, 2, 3)
	img, err := g.Draw([]Raster{{}, Image(pix, []int{1, 28, 28})})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "d.png")
	if err := SavePNG(path, img); err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(path)
	defer f.Close()
	back, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	cell := g.Cell(0, 1)
	at := func(x, y int) uint8 {
		return color.GrayModel.Convert(back.At(cell.Min.X+x, cell.Min.Y+y)).(color.Gray).Y
	}
	checks := []struct {
		x, y int
		want uint8
	}{{0, 0, 255}, {2, 2, 255}, {3, 3, 128}, {5, 5, 128}, {6, 6, 0}, {83, 83, 255}, {82, 0, 0}}
	for _, c := range checks {
		if got := at(c.x, c.y); got != c.want {
			t.Errorf("pixel (%d,%d) = %d, want %d", c.x, c.y, got, c.want)
		}
	}
	// The empty first cell stays white.
	if y := color.GrayModel.Convert(back.At(g.Cell(0, 0).Min.X+10, g.Cell(0, 0).Min.Y+10)).(color.Gray).Y; y != 255 {
		t.Errorf("empty cell pixel %d, want 255", y)
	}
}

func TestStrip(t *testing.T) {
	s := Strip([]float32{-2, 0, 2}, -2, 2)
	if s.W != 3 || s.H != 1 || s.Pix[0] != 0 || s.Pix[1] != 0.5 || s.Pix[2] != 1 {
		t.Errorf("strip %+v", s)
	}
}

func TestDrawErrors(t *testing.T) {
	if _, err := (Grid{}).Draw(nil); err == nil {
		t.Error("drew an empty grid")
	}
	if _, err := DigitGrid(1, 1, 1).Draw([]Raster{{}, {}}); err == nil {
		t.Error("drew 2 cells in a 1x1 grid")
	}
	if _, err := DigitGrid(1, 1, 1).Draw([]Raster{{Pix: make([]float32, 5), W: 28, H: 28}}); err == nil {
		t.Error("drew a raster with too few values")
	}
}

// TestColourRaster draws a 3×2×2 image and checks each pixel's colour.
func TestColourRaster(t *testing.T) {
	// Planes: red, green, blue of 2×2 pixels.
	pix := []float32{1, 0, 0, 1, 0, 1, 0, 1, 0, 0, 1, 1}
	g := ImageGrid(1, 1, []int{3, 2, 2}, 1)
	img, err := g.Draw([]Raster{Image(pix, []int{3, 2, 2})})
	if err != nil {
		t.Fatal(err)
	}
	cell := g.Cell(0, 0)
	want := []color.RGBA{{255, 0, 0, 255}, {0, 255, 0, 255}, {0, 0, 255, 255}, {255, 255, 255, 255}}
	for i, w := range want {
		if got := img.RGBAAt(cell.Min.X+i%2, cell.Min.Y+i/2); got != w {
			t.Errorf("pixel %d: %v, want %v", i, got, w)
		}
	}
	if _, err := g.Draw([]Raster{{Pix: pix[:8], W: 2, H: 2, C: 3}}); err == nil {
		t.Error("a colour raster with too few values: no error")
	}
}
