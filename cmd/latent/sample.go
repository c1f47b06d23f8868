package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"github.com/latent-ai/latent/atomicfile"
	"github.com/latent-ai/latent/exporter"
	"github.com/latent-ai/latent/inference"
	"github.com/latent-ai/latent/npyarray"
)

func init() {
	register(&command{
		name:  "sample",
		args:  "RUN",
		short: "draw random codes and decode them with RUN/decoder.onnx into a PNG grid or a .npy file",
		setup: setupSample,
	})
}

func setupSample(fs *flag.FlagSet) func(context.Context, []string) error {
	var (
		n    = fs.Int("n", 64, "number of samples")
		from = fs.String("from", "", "where codes come from: fitted (the Gaussian fitted to the training set's codes at export)\nor normal (N(0, I), a VAE's prior); default: normal for classic-vae and conv-vae, fitted for the others")
		seed = fs.Uint64("seed", 1, "random seed")
		out  = fs.String("out", "", "file to write: .png for a grid, .npy for float32 images [n,C,H,W] (default RUN/samples.png)")
		grid gridFlags
	)
	grid.register(fs)
	var rt ortFlags
	rt.register(fs)
	return func(ctx context.Context, args []string) error {
		if len(args) != 1 {
			return usageError("want one run folder")
		}
		dir := args[0]
		if *n < 1 || *n > maxGrid {
			return usageError("-n %d: want 1 to %d", *n, maxGrid)
		}
		if *from != "" && *from != inference.FromFitted && *from != inference.FromNormal {
			return usageError("--from %q: want fitted or normal", *from)
		}
		path := *out
		if path == "" {
			path = filepath.Join(dir, "samples.png")
		}
		asPNG := strings.HasSuffix(path, ".png")
		if !asPNG && !strings.HasSuffix(path, ".npy") {
			return usageError("--out %s: want a .png or .npy file", path)
		}
		if err := grid.check(); err != nil {
			return err
		}
		opts, err := rt.options()
		if err != nil {
			return err
		}
		model, err := openHalf(dir, exporter.Decoder, opts)
		if err != nil {
			return err
		}
		defer model.Close()

		source := *from
		if source == "" {
			source = inference.FromFitted
			if md := model.Metadata(); md != nil && md.Arch.Variational {
				source = inference.FromNormal // the prior the VAE was trained to decode
			}
		}
		rng := rand.New(rand.NewPCG(*seed, 0x1a7e47))
		_, images, err := model.Sample(*n, source, rng)
		if err != nil {
			return err
		}
		if asPNG {
			err = grid.write(path, images, *n, model.ImageShape())
		} else {
			err = atomicfile.Write(path, 0o644, func(f *os.File) error {
				w := bufio.NewWriter(f)
				if err := npyarray.WriteHeader(w, npyarray.Float32, append([]int{*n}, model.ImageShape()...)); err != nil {
					return err
				}
				if err := npyarray.WriteFloat32s(w, images); err != nil {
					return err
				}
				return w.Flush()
			})
		}
		if err != nil {
			return err
		}
		fmt.Printf("%s\t%d samples from %s\n", path, *n, source)
		return nil
	}
}
