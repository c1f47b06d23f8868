package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"strings"

	"github.com/latent-ai/latent/atomicfile"
	"github.com/latent-ai/latent/exporter"
	"github.com/latent-ai/latent/npyarray"
)

// maxGrid is the largest number of images drawn in one PNG grid.
const maxGrid = 4096

func init() {
	register(&command{
		name:  "decode",
		args:  "RUN",
		short: "decode a .npy file of codes [N,b] with RUN/decoder.onnx into images, as .npy [N,C,H,W] or a PNG grid",
		setup: setupDecode,
	})
}

func setupDecode(fs *flag.FlagSet) func(context.Context, []string) error {
	var (
		codesPath = fs.String("codes", "", "codes to decode: a .npy file of float32 or float64, shape [N,b] or [b] (required)")
		out       = fs.String("out", "", "file to write: .npy for float32 images [N,C,H,W] in [0,1], .png for a grid of the digits (required)")
		limit     = fs.Int("limit", 0, "decode the first N codes only (0: all)")
		batch     = fs.Int("batch", 1000, "codes per ONNX Runtime call")
		grid      gridFlags
		quiet     = fs.Bool("quiet", false, "no progress bar")
	)
	grid.register(fs)
	var rt ortFlags
	rt.register(fs)
	return func(ctx context.Context, args []string) error {
		if len(args) != 1 {
			return usageError("want one run folder")
		}
		if *codesPath == "" || *out == "" {
			return usageError("--codes and --out are required")
		}
		if *limit < 0 || *batch < 1 {
			return usageError("--limit %d, --batch %d: want --limit >= 0 and --batch >= 1", *limit, *batch)
		}
		asPNG := strings.HasSuffix(*out, ".png")
		if !asPNG && !strings.HasSuffix(*out, ".npy") {
			return usageError("--out %s: want a .npy or .png file", *out)
		}
		if err := grid.check(); err != nil {
			return err
		}
		opts, err := rt.options()
		if err != nil {
			return err
		}
		model, err := openHalf(args[0], exporter.Decoder, opts)
		if err != nil {
			return err
		}
		defer model.Close()

		codes, shape, err := npyarray.ReadFile(*codesPath)
		if err != nil {
			return err
		}
		b := model.Bottleneck()
		var n int
		switch {
		case len(shape) == 2 && shape[1] == b:
			n = shape[0]
		case len(shape) == 1 && shape[0] == b:
			n = 1
		default:
			return fmt.Errorf("%s holds an array of shape %v: want [N,%d] codes for this decoder (bottleneck %d)", *codesPath, shape, b, b)
		}
		if *limit > 0 && *limit < n {
			n = *limit
			codes = codes[:n*b]
		}
		if n == 0 {
			return fmt.Errorf("%s holds no codes", *codesPath)
		}
		if asPNG && n > maxGrid {
			return fmt.Errorf("%d codes are too many for one PNG grid (at most %d): use --limit or write .npy", n, maxGrid)
		}

		size := imageSize(model)
		bar := newProgress(n, "decoding", *quiet)
		var images []float32
		if asPNG {
			images = make([]float32, 0, n*size)
		}
		decodeAll := func(emit func([]float32) error) error {
			for off := 0; off < n; off += *batch {
				if err := ctx.Err(); err != nil {
					return fmt.Errorf("interrupted: %w; nothing was written", err)
				}
				k := min(*batch, n-off)
				imgs, err := model.Decode(codes[off*b:(off+k)*b], k)
				if err != nil {
					return fmt.Errorf("decoding codes %d to %d of %s: %w", off, off+k-1, *codesPath, err)
				}
				if err := emit(imgs); err != nil {
					return err
				}
				bar.Add(k)
			}
			return nil
		}
		if asPNG {
			err = decodeAll(func(imgs []float32) error { images = append(images, imgs...); return nil })
			if err == nil {
				bar.Finish()
				err = grid.write(*out, images, n, model.ImageShape())
			}
		} else {
			err = atomicfile.Write(*out, 0o644, func(f *os.File) error {
				w := bufio.NewWriterSize(f, 1<<20)
				if err := npyarray.WriteHeader(w, npyarray.Float32, append([]int{n}, model.ImageShape()...)); err != nil {
					return err
				}
				if err := decodeAll(func(imgs []float32) error { return npyarray.WriteFloat32s(w, imgs) }); err != nil {
					return err
				}
				return w.Flush()
			})
			bar.Finish()
		}
		if err != nil {
			return err
		}
		fmt.Printf("%s\t%d images\n", *out, n)
		return nil
	}
}

// gridFlags lay out a PNG grid of images.
type gridFlags struct {
	scale, cols int
}

func (g *gridFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&g.scale, "scale", 2, "PNG: magnification of each image (nearest neighbour)")
	fs.IntVar(&g.cols, "cols", 0, "PNG: images per row (0: a square grid)")
}

func (g *gridFlags) check() error {
	if g.scale < 1 || g.scale > 16 {
		return usageError("--scale %d: want 1 to 16", g.scale)
	}
	if g.cols < 0 {
		return usageError("--cols %d: want 0 or more", g.cols)
	}
	return nil
}

// write draws n images (n*C*H*W values in [0,1], the first channel shown)
// as a grid, white on black, and writes it to path as PNG atomically.
func (g *gridFlags) write(path string, images []float32, n int, shape []int) error {
	img := digitGrid(images, n, shape, g.cols, g.scale)
	return atomicfile.Write(path, 0o644, func(f *os.File) error {
		w := bufio.NewWriter(f)
		if err := png.Encode(w, img); err != nil {
			return err
		}
		return w.Flush()
	})
}

// digitGrid draws n images of shape [C,H,W] in a grid of cols columns
// (0: about square), each magnified scale times, with a grey gap between.
func digitGrid(images []float32, n int, shape []int, cols, scale int) *image.Gray {
	h, w := shape[len(shape)-2], shape[len(shape)-1]
	size := 1
	for _, d := range shape {
		size *= d
	}
	if cols <= 0 {
		cols = int(math.Ceil(math.Sqrt(float64(n))))
	}
	cols = min(cols, n)
	rows := (n + cols - 1) / cols
	gap := scale
	cw, ch := w*scale+gap, h*scale+gap
	img := image.NewGray(image.Rect(0, 0, cols*cw+gap, rows*ch+gap))
	for i := range img.Pix {
		img.Pix[i] = 64
	}
	for k := 0; k < n; k++ {
		x0, y0 := gap+(k%cols)*cw, gap+(k/cols)*ch
		px := images[k*size : k*size+h*w]
		for y := 0; y < h*scale; y++ {
			for x := 0; x < w*scale; x++ {
				v := px[(y/scale)*w+x/scale]
				img.SetGray(x0+x, y0+y, color.Gray{Y: uint8(math.Round(255 * math.Min(math.Max(float64(v), 0), 1)))})
			}
		}
	}
	return img
}
