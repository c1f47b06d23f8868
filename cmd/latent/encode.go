package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"codeberg.org/sbinet/npyio"
	"github.com/latent-ai/latent/atomicfile"
	"github.com/latent-ai/latent/dataset"
	"github.com/latent-ai/latent/exporter"
	"github.com/latent-ai/latent/inference"
)

func init() {
	register(&command{
		name:  "encode",
		args:  "RUN",
		short: "encode a split of the data set with RUN/encoder.onnx into a .npy file of codes [N,b] and one of labels [N]",
		setup: setupEncode,
	})
}

func setupEncode(fs *flag.FlagSet) func(context.Context, []string) error {
	var (
		split = fs.String("split", dataset.Test, "which images: train, test or all (train then test)")
		out   = fs.String("out", "", "codes file to write, float32 [N,b] (default RUN/codes-SPLIT.npy); the labels, uint8 [N], go to the same name ending in -labels.npy")
		batch = fs.Int("batch", 1000, "images per ONNX Runtime call")
		quiet = fs.Bool("quiet", false, "no progress bar")
	)
	var data dataFlags
	data.register(fs, "")
	var rt ortFlags
	rt.register(fs)
	return func(ctx context.Context, args []string) error {
		if len(args) != 1 {
			return usageError("want one run folder")
		}
		dir := args[0]
		var splits []string
		switch *split {
		case dataset.Train, dataset.Test:
			splits = []string{*split}
		case "all":
			splits = []string{dataset.Train, dataset.Test}
		default:
			return usageError("--split %q: want train, test or all", *split)
		}
		if *batch < 1 {
			return usageError("--batch %d: want at least 1", *batch)
		}
		codesPath := *out
		if codesPath == "" {
			codesPath = filepath.Join(dir, "codes-"+*split+".npy")
		}
		if !strings.HasSuffix(codesPath, ".npy") {
			return usageError("--out %s: want a .npy file", codesPath)
		}
		labelsPath := strings.TrimSuffix(codesPath, ".npy") + "-labels.npy"
		opts, err := rt.options()
		if err != nil {
			return err
		}
		model, err := openHalf(dir, exporter.Encoder, opts)
		if err != nil {
			return err
		}
		defer model.Close()
		if data.name == "" {
			if md := model.Metadata(); md != nil && md.Dataset != "" {
				data.name = md.Dataset
			} else {
				data.name = dataset.MNIST
			}
		}

		var sets []*dataset.Set
		n := 0
		for _, s := range splits {
			set, err := data.load(ctx, s)
			if err != nil {
				return err
			}
			if set.Rows*set.Cols != imageSize(model) {
				return fmt.Errorf("%s %s has %dx%d images, the encoder takes %v", data.name, s, set.Rows, set.Cols, model.ImageShape())
			}
			sets = append(sets, set)
			n += set.N
		}

		b := model.Bottleneck()
		labels := make([]uint8, 0, n)
		bar := newProgress(n, "encoding "+data.name+" "+*split, *quiet)
		err = atomicfile.Write(codesPath, 0o644, func(f *os.File) error {
			w := bufio.NewWriterSize(f, 1<<20)
			if err := writeNPYHeader(w, "<f4", []int{n, b}); err != nil {
				return err
			}
			for _, set := range sets {
				size := set.Rows * set.Cols
				for off := 0; off < set.N; off += *batch {
					if err := ctx.Err(); err != nil {
						return fmt.Errorf("interrupted: %w; nothing was written", err)
					}
					k := min(*batch, set.N-off)
					codes, err := model.Encode(set.Images[off*size:(off+k)*size], k)
					if err != nil {
						return fmt.Errorf("encoding %s images %d to %d: %w", set.Split, off, off+k-1, err)
					}
					if err := writeFloat32s(w, codes); err != nil {
						return err
					}
					bar.Add(k)
				}
				labels = append(labels, set.Labels...)
			}
			return w.Flush()
		})
		if err != nil {
			return err
		}
		bar.Finish()
		var buf bytes.Buffer
		if err := npyio.Write(&buf, labels); err != nil {
			return fmt.Errorf("write %s: %w", labelsPath, err)
		}
		if err := atomicfile.WriteBytes(labelsPath, buf.Bytes(), 0o644); err != nil {
			return err
		}
		fmt.Printf("%s\tfloat32 [%d,%d]\n%s\tuint8 [%d]\n", codesPath, n, b, labelsPath, n)
		return nil
	}
}

// openHalf opens RUN/encoder.onnx or RUN/decoder.onnx alone.
func openHalf(dir, part string, opts inference.Options) (*inference.Model, error) {
	name := exporter.EncoderFile
	if part == exporter.Decoder {
		name = exporter.DecoderFile
	}
	path := filepath.Join(dir, name)
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("%s: %w: run 'latent export %s' first", path, errors.Unwrap(err), dir)
	}
	if part == exporter.Encoder {
		return inference.Open(path, "", opts)
	}
	return inference.Open("", path, opts)
}

func imageSize(m *inference.Model) int {
	n := 1
	for _, d := range m.ImageShape() {
		n *= d
	}
	return n
}

// writeNPYHeader writes the header of a C-ordered NumPy .npy file (format
// version 1.0) of the given dtype ("<f4", "|u1") and shape. The data, row
// after row, little-endian, must follow.
func writeNPYHeader(w io.Writer, descr string, shape []int) error {
	dims := make([]string, len(shape))
	for i, d := range shape {
		dims[i] = strconv.Itoa(d)
	}
	tuple := "(" + strings.Join(dims, ", ")
	if len(shape) == 1 {
		tuple += ","
	}
	tuple += ")"
	dict := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, tuple)
	// magic (6) + version (2) + length (2) + dict + padding + "\n" is a
	// multiple of 64.
	total := (10 + len(dict) + 1 + 63) / 64 * 64
	hdr := make([]byte, 0, total)
	hdr = append(hdr, "\x93NUMPY\x01\x00"...)
	hdr = binary.LittleEndian.AppendUint16(hdr, uint16(total-10))
	hdr = append(hdr, dict...)
	for len(hdr) < total-1 {
		hdr = append(hdr, ' ')
	}
	hdr = append(hdr, '\n')
	_, err := w.Write(hdr)
	return err
}

func writeFloat32s(w io.Writer, v []float32) error {
	buf := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(x))
	}
	_, err := w.Write(buf)
	return err
}

// readNPYFloat32 reads a .npy file of float32 or float64 values and
// returns them as float32 with the array's shape.
func readNPYFloat32(path string) ([]float32, []int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	r, err := npyio.NewReader(bufio.NewReader(f))
	if err != nil {
		return nil, nil, fmt.Errorf("%s: not a NumPy .npy file: %w", path, err)
	}
	h := r.Header
	if h.Descr.Fortran {
		return nil, nil, fmt.Errorf("%s: Fortran-ordered array: save it in C order (numpy.ascontiguousarray)", path)
	}
	shape := append([]int(nil), h.Descr.Shape...)
	switch strings.Trim(h.Descr.Type, "'\"") {
	case "<f4":
		var v []float32
		if err := r.Read(&v); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		return v, shape, nil
	case "<f8":
		var v []float64
		if err := r.Read(&v); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		out := make([]float32, len(v))
		for i, x := range v {
			out[i] = float32(x)
		}
		return out, shape, nil
	}
	return nil, nil, fmt.Errorf("%s: dtype %s: want float32 (<f4) or float64 (<f8)", path, strings.Trim(h.Descr.Type, "'\""))
}
