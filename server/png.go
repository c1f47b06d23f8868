package server

import (
	"bytes"
	"fmt"
	"image"
	"image/png"
	"io"
	"math"

	"github.com/latent-ai/latent/figures"
)

// pngSignature starts every PNG file.
const pngSignature = "\x89PNG\r\n\x1a\n"

// readPNG reads a PNG body of at most limit bytes and converts it with
// decodePNG.
func readPNG(body io.Reader, w, h int, invert bool) ([]float32, error) {
	data, err := io.ReadAll(body)
	if err != nil {
		return nil, jsonError(err) // the body's errors: too large, timeout
	}
	return decodePNG(data, w, h, invert)
}

// decodePNG converts the PNG image in data to w×h grayscale values in
// [0,1], row-major, following MNIST: 0 is black (the background), 1 white
// (the ink). Colours become their luminance (ITU-R BT.601 weights, as
// image/color's GrayModel); a transparent pixel counts as black, a
// translucent one as its colour over black. The picture is resized by
// averaging over areas: each output pixel is the mean of the part of the
// picture it covers, which works for any size and aspect ratio (a picture
// that is not square is stretched). invert turns black on white into white
// on black. Pictures wider or taller than MaxPNGSide get 413; anything that
// is not a PNG gets 400.
func decodePNG(data []byte, w, h int, invert bool) ([]float32, error) {
	if !bytes.HasPrefix(data, []byte(pngSignature)) {
		return nil, badRequest("not a PNG image: the body does not start with the PNG signature")
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return nil, badRequest("damaged PNG image: %v", err)
	}
	if cfg.Width < 1 || cfg.Height < 1 {
		return nil, badRequest("PNG of %d×%d pixels: want at least one pixel", cfg.Width, cfg.Height)
	}
	if cfg.Width > MaxPNGSide || cfg.Height > MaxPNGSide {
		return nil, tooLarge("PNG of %d×%d pixels: at most %d on a side", cfg.Width, cfg.Height, MaxPNGSide)
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, badRequest("damaged PNG image: %v", err)
	}
	out := resize(gray(img), img.Bounds().Dx(), img.Bounds().Dy(), w, h)
	pix := make([]float32, len(out))
	for i, v := range out {
		v = min(max(v, 0), 1)
		if invert {
			v = 1 - v
		}
		pix[i] = float32(v)
	}
	return pix, nil
}

// gray returns the luminance of img over black, in [0,1], row-major.
func gray(img image.Image) []float64 {
	b := img.Bounds()
	out := make([]float64, 0, b.Dx()*b.Dy())
	switch m := img.(type) {
	case *image.Gray:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			row := m.Pix[m.PixOffset(b.Min.X, y):]
			for x := 0; x < b.Dx(); x++ {
				out = append(out, float64(row[x])/255)
			}
		}
	case *image.NRGBA: // what browsers' canvases export
		for y := b.Min.Y; y < b.Max.Y; y++ {
			row := m.Pix[m.PixOffset(b.Min.X, y):]
			for x := 0; x < b.Dx(); x++ {
				p := row[4*x : 4*x+4]
				lum := 0.299*float64(p[0]) + 0.587*float64(p[1]) + 0.114*float64(p[2])
				out = append(out, lum*float64(p[3])/(255*255))
			}
		}
	default:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				// RGBA is premultiplied by alpha: the colour over black.
				r, g, bl, _ := img.At(x, y).RGBA()
				out = append(out, (0.299*float64(r)+0.587*float64(g)+0.114*float64(bl))/0xffff)
			}
		}
	}
	return out
}

// resize resamples the sw×sh values of src to dw×dh by area averaging,
// one axis after the other.
func resize(src []float64, sw, sh, dw, dh int) []float64 {
	// Along x: sh rows of dw values.
	wx := areaWeights(sw, dw)
	tmp := make([]float64, sh*dw)
	for y := 0; y < sh; y++ {
		row := src[y*sw : (y+1)*sw]
		for x, ws := range wx {
			sum := 0.0
			for _, t := range ws {
				sum += t.w * row[t.i]
			}
			tmp[y*dw+x] = sum
		}
	}
	// Along y: dh rows of dw values.
	wy := areaWeights(sh, dh)
	out := make([]float64, dh*dw)
	for y, ws := range wy {
		for _, t := range ws {
			row := tmp[t.i*dw : (t.i+1)*dw]
			for x := range row {
				out[y*dw+x] += t.w * row[x]
			}
		}
	}
	return out
}

// tap is one source index and its weight.
type tap struct {
	i int
	w float64
}

// areaWeights returns, for each of n cells of equal width laid over m
// source values, the source values it covers and the share of the cell each
// covers; the shares of a cell add up to 1.
func areaWeights(m, n int) [][]tap {
	out := make([][]tap, n)
	scale := float64(m) / float64(n)
	for j := range out {
		lo, hi := float64(j)*scale, float64(j+1)*scale
		for i := int(math.Floor(lo)); i < m && float64(i) < hi; i++ {
			if cover := min(hi, float64(i+1)) - max(lo, float64(i)); cover > 0 {
				out[j] = append(out[j], tap{i, cover / scale})
			}
		}
	}
	return out
}

// maxGridPixels bounds the size of a PNG grid that /v1/decode draws.
const maxGridPixels = 4 << 20

// encodeGrid draws n images of h×w values (in [0,1]) as a PNG grid of
// about square shape, each upscaled scale times, white digits on black in
// frames on a white page (see package figures).
func encodeGrid(images []float32, n, h, w, scale int) ([]byte, error) {
	cols := int(math.Ceil(math.Sqrt(float64(n))))
	rows := (n + cols - 1) / cols
	g := figures.Grid{Rows: rows, Cols: cols, CellW: w * scale, CellH: h * scale, Gap: 2}
	if gw, gh := g.Size(); gw*gh > maxGridPixels {
		return nil, tooLarge("a grid of %d images at scale %d is %d×%d pixels: at most %d pixels; lower the scale or the batch", n, scale, gw, gh, maxGridPixels)
	}
	cells := make([]figures.Raster, n)
	size := h * w
	for i := range cells {
		cells[i] = figures.Raster{Pix: images[i*size : (i+1)*size], W: w, H: h}
	}
	img, err := g.Draw(cells)
	if err != nil {
		return nil, fmt.Errorf("server: draw the grid: %w", err)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, fmt.Errorf("server: encode the grid: %w", err)
	}
	return buf.Bytes(), nil
}
