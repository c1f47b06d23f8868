// Package imageprep turns a picture, PNG or JPEG, into the input of a latent
// model: C×H×W float32 values in [0,1], row-major, channel after channel,
// as the inference package takes them. The server uses it for
// /v1/encode, and a service that embeds the inference package can use it
// for its own uploads.
//
// The conversion follows MNIST's conventions: 0 is black, the background,
// and 1 white, the ink. For one channel, colours become their luminance
// (ITU-R BT.601 weights, as image/color's GrayModel); for three, their red,
// green and blue. A transparent pixel counts as black, a translucent one as
// its colour over black. The picture is resized by averaging over areas:
// each output pixel is the mean of the part of the picture it covers, so
// any size and aspect ratio works, and the result is deterministic.
//
// Options.Center applies MNIST's own preprocessing instead of stretching
// the whole picture: the ink's bounding box is scaled to fit 20/28 of the
// frame, keeping its aspect ratio, and placed so that its centre of mass
// is at the frame's centre. A digit drawn small in a corner of a large
// canvas then looks to the model like an MNIST digit.
package imageprep

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
)

// The ways Options.Fit fits a picture into the frame.
const (
	FitStretch = "stretch"
	FitCrop    = "crop"
	FitPad     = "pad"
)

// DefaultMaxSide is the largest width or height that Decode accepts when
// Options.MaxSide is 0.
const DefaultMaxSide = 4096

// Errors that Decode's errors wrap, for callers that answer differently
// (an HTTP server: 415 or 400 against 413).
var (
	// ErrFormat: the data is not a PNG or JPEG picture, or is damaged.
	ErrFormat = errors.New("imageprep: not a readable PNG or JPEG picture")
	// ErrTooLarge: the picture's header claims more pixels than allowed;
	// nothing was decoded.
	ErrTooLarge = errors.New("imageprep: picture too large")
)

// Options say what input the model takes and how to get there.
type Options struct {
	// Channels, Height and Width are the model's input shape: 1 channel
	// (luminance) or 3 (red, green, blue).
	Channels, Height, Width int
	// Invert turns dark ink on a light background (a scan, a drawing on
	// paper) into light ink on a dark one, as MNIST has it.
	Invert bool
	// Center crops to the ink and centres it as MNIST does (see the
	// package documentation) instead of fitting the whole picture.
	Center bool
	// Fit says how a picture of another aspect ratio than Width×Height
	// fills it: FitStretch (also when empty) scales each axis on its own,
	// FitCrop cuts the picture's longer side to the frame's ratio around
	// its centre, FitPad adds black on both sides of its shorter one.
	Fit string
	// MaxSide bounds the picture's width and height, checked from its
	// header before it is decoded; 0 means DefaultMaxSide.
	MaxSide int
}

// Decode converts the PNG or JPEG picture in data to the model's input:
// Channels·Height·Width values in [0,1], in a new slice owned by the
// caller. data is only read.
func Decode(data []byte, o Options) ([]float32, error) {
	if o.Channels != 1 && o.Channels != 3 {
		return nil, fmt.Errorf("imageprep: %d channels: want 1 or 3", o.Channels)
	}
	if o.Height < 1 || o.Width < 1 {
		return nil, fmt.Errorf("imageprep: output of %d×%d pixels: want at least 1×1", o.Width, o.Height)
	}
	if o.MaxSide == 0 {
		o.MaxSide = DefaultMaxSide
	}
	switch o.Fit {
	case "", FitStretch, FitCrop, FitPad:
	default:
		return nil, fmt.Errorf("imageprep: fit %q: want stretch, crop or pad", o.Fit)
	}
	img, err := decodeChecked(data, o.MaxSide)
	if err != nil {
		return nil, err
	}
	b := img.Bounds()
	planes := channels(img, o.Channels)
	var out [][]float64
	if o.Center {
		if o.Invert { // before centring, which looks for the ink
			for _, p := range planes {
				for i, v := range p {
					p[i] = 1 - v
				}
			}
		}
		out = center(planes, b.Dx(), b.Dy(), o.Width, o.Height)
	} else {
		sw, sh := b.Dx(), b.Dy()
		planes, sw, sh = fit(planes, sw, sh, o.Width, o.Height, o.Fit)
		out = make([][]float64, len(planes))
		for c, p := range planes {
			out[c] = resize(p, sw, sh, o.Width, o.Height)
		}
	}
	pix := make([]float32, 0, o.Channels*o.Height*o.Width)
	for _, p := range out {
		for _, v := range p {
			v = min(max(v, 0), 1)
			if o.Invert && !o.Center {
				v = 1 - v
			}
			pix = append(pix, float32(v))
		}
	}
	return pix, nil
}

// decodeChecked decodes the PNG or JPEG picture in data after checking, from
// its header alone, that it is at most maxSide pixels on a side: a picture
// that claims to be huge (a decompression bomb) is refused before any pixel
// buffer is allocated for it.
func decodeChecked(data []byte, maxSide int) (image.Image, error) {
	config, decode := png.DecodeConfig, png.Decode
	switch {
	case bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")):
	case bytes.HasPrefix(data, []byte{0xff, 0xd8, 0xff}):
		config, decode = jpeg.DecodeConfig, jpeg.Decode
	default:
		return nil, fmt.Errorf("%w: the data starts with neither the PNG nor the JPEG signature", ErrFormat)
	}
	cfg, err := config(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	if cfg.Width < 1 || cfg.Height < 1 {
		return nil, fmt.Errorf("%w: a picture of %d×%d pixels", ErrFormat, cfg.Width, cfg.Height)
	}
	if cfg.Width > maxSide || cfg.Height > maxSide {
		return nil, fmt.Errorf("%w: %d×%d pixels, at most %d on a side", ErrTooLarge, cfg.Width, cfg.Height, maxSide)
	}
	img, err := decode(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	return img, nil
}

// channels returns the picture over black as c planes of values in [0,1],
// row-major: its luminance for c = 1, its red, green and blue for c = 3.
func channels(img image.Image, c int) [][]float64 {
	b := img.Bounds()
	n := b.Dx() * b.Dy()
	planes := make([][]float64, c)
	for i := range planes {
		planes[i] = make([]float64, 0, n)
	}
	// pixel adds one pixel of colour r, g, bl and opacity a, each 0-255.
	pixel := func(r, g, bl, a float64) {
		if c == 1 {
			lum := 0.299*r + 0.587*g + 0.114*bl
			planes[0] = append(planes[0], lum*a/(255*255))
			return
		}
		planes[0] = append(planes[0], r*a/(255*255))
		planes[1] = append(planes[1], g*a/(255*255))
		planes[2] = append(planes[2], bl*a/(255*255))
	}
	switch m := img.(type) {
	case *image.Gray:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			row := m.Pix[m.PixOffset(b.Min.X, y):]
			for x := 0; x < b.Dx(); x++ {
				v := float64(row[x]) / 255
				for i := range planes {
					planes[i] = append(planes[i], v)
				}
			}
		}
	case *image.NRGBA: // what browsers' canvases export
		for y := b.Min.Y; y < b.Max.Y; y++ {
			row := m.Pix[m.PixOffset(b.Min.X, y):]
			for x := 0; x < b.Dx(); x++ {
				p := row[4*x : 4*x+4]
				pixel(float64(p[0]), float64(p[1]), float64(p[2]), float64(p[3]))
			}
		}
	default:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				// RGBA is premultiplied by alpha: the colour over black.
				r, g, bl, _ := img.At(x, y).RGBA()
				if c == 1 {
					planes[0] = append(planes[0], (0.299*float64(r)+0.587*float64(g)+0.114*float64(bl))/0xffff)
					continue
				}
				planes[0] = append(planes[0], float64(r)/0xffff)
				planes[1] = append(planes[1], float64(g)/0xffff)
				planes[2] = append(planes[2], float64(bl)/0xffff)
			}
		}
	}
	return planes
}
