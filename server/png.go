package server

import (
	"bytes"
	"errors"
	"fmt"
	"image/png"
	"io"
	"math"

	"github.com/latent-ai/latent/figures"
	"github.com/latent-ai/latent/imageprep"
)

// readPNG reads a PNG body and converts it with decodePNG.
func readPNG(body io.Reader, shape []int, invert bool) ([]float32, error) {
	data, err := io.ReadAll(body)
	if err != nil {
		return nil, jsonError(err) // the body's errors: too large, timeout
	}
	return decodePNG(data, shape, invert)
}

// decodePNG converts the picture in data to the model's input of shape
// C×H×W, values in [0,1], with package imageprep (see it for the
// conversion): pictures wider or taller than MaxPNGSide get 413, anything
// that is not a readable picture 400.
func decodePNG(data []byte, shape []int, invert bool) ([]float32, error) {
	pix, err := imageprep.Decode(data, imageprep.Options{Channels: shape[0], Height: shape[1], Width: shape[2], Invert: invert, MaxSide: MaxPNGSide})
	switch {
	case errors.Is(err, imageprep.ErrTooLarge):
		return nil, tooLarge("%v", err)
	case err != nil:
		return nil, badRequest("%v", err)
	}
	return pix, nil
}

// maxGridPixels bounds the size of a PNG grid that /v1/decode draws.
const maxGridPixels = 4 << 20

// encodeGrid draws n images of shape C×H×W (values in [0,1]) as a PNG grid
// of about square shape, each upscaled scale times, white digits on black
// (or in colour, for three channels) in frames on a white page (see package
// figures).
func encodeGrid(images []float32, n int, shape []int, scale int) ([]byte, error) {
	h, w := shape[1], shape[2]
	cols := int(math.Ceil(math.Sqrt(float64(n))))
	rows := (n + cols - 1) / cols
	g := figures.Grid{Rows: rows, Cols: cols, CellW: w * scale, CellH: h * scale, Gap: 2}
	if gw, gh := g.Size(); gw*gh > maxGridPixels {
		return nil, tooLarge("a grid of %d images at scale %d is %d×%d pixels: at most %d pixels; lower the scale or the batch", n, scale, gw, gh, maxGridPixels)
	}
	cells := make([]figures.Raster, n)
	size := shape[0] * h * w
	for i := range cells {
		cells[i] = figures.Image(images[i*size:(i+1)*size], shape)
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
