package run

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/latent-ai/latent/atomicfile"
	"github.com/latent-ai/latent/checkpoint"
	"github.com/latent-ai/latent/dataset"
	"github.com/latent-ai/latent/exporter"
	"github.com/latent-ai/latent/inference"
	"github.com/latent-ai/latent/latentstats"
	"github.com/latent-ai/latent/onnxmeta"
	"github.com/latent-ai/latent/pca"
)

// ExportOptions configure Export.
type ExportOptions struct {
	// Train is the training set whose codes the latent statistics are fitted
	// to; nil exports without statistics (no sampling from the fitted
	// Gaussian, no report).
	Train *dataset.Set
	// Inference configures the ONNX Runtime session that encodes Train.
	Inference inference.Options
	// Batch is the number of images per ONNX Runtime call; 0 means 1000.
	Batch int
	// Progress, when not nil, is called after each batch with the images
	// encoded so far and their total.
	Progress func(done, total int)
}

// Export writes the folder's encoder, decoder and, with opts.Train, the
// latent statistics of the training codes, and returns the paths written
// and the statistics (nil without). It writes all of them or none: each is
// written in full beside its destination before any is moved into place,
// so that a full disk or a cancelled ctx leaves an earlier export as it
// was.
func (f Folder) Export(ctx context.Context, opts ExportOptions) ([]string, *latentstats.Stats, error) {
	m, err := f.Model()
	if err != nil {
		return nil, nil, err
	}
	var stats *latentstats.Stats
	if opts.Train != nil {
		if stats, err = f.fitStats(ctx, m, opts); err != nil {
			return nil, nil, err
		}
	}
	paths, err := f.writeExport(m, stats)
	if err != nil {
		return nil, nil, err
	}
	return paths, stats, nil
}

// writeExport writes the encoder, the decoder and, when stats is not nil,
// the statistics of m into the folder, all three or none.
func (f Folder) writeExport(m *checkpoint.Model, stats *latentstats.Stats) ([]string, error) {
	type file struct {
		path  string
		write func(w io.Writer) error
	}
	files := []file{
		{f.Path(EncoderFile), func(w io.Writer) error { return exporter.WriteEncoder(w, m, stats) }},
		{f.Path(DecoderFile), func(w io.Writer) error { return exporter.WriteDecoder(w, m, stats) }},
	}
	if stats != nil {
		files = append(files, file{f.Path(StatsFile), func(w io.Writer) error {
			b, err := json.MarshalIndent(stats, "", " ") // as latentstats.Save writes it
			if err != nil {
				return err
			}
			_, err = w.Write(append(b, '\n'))
			return err
		}})
	}
	var pending []*atomicfile.Pending
	defer func() {
		for _, p := range pending {
			p.Discard()
		}
	}()
	for _, fl := range files {
		var buf bytes.Buffer
		if err := fl.write(&buf); err != nil {
			return nil, fmt.Errorf("export %s: %w", fl.path, err)
		}
		p, err := atomicfile.PrepareBytes(fl.path, buf.Bytes(), 0o644)
		if err != nil {
			return nil, err
		}
		pending = append(pending, p)
	}
	paths := make([]string, len(pending))
	for i, p := range pending {
		if err := p.Commit(); err != nil {
			return nil, err
		}
		paths[i] = p.Path()
	}
	return paths, nil
}

// fitStats writes a temporary encoder without statistics, encodes the
// training set through ONNX Runtime and fits the latent statistics of the
// codes.
func (f Folder) fitStats(ctx context.Context, m *checkpoint.Model, opts ExportOptions) (*latentstats.Stats, error) {
	tmp, err := stage(string(f), "export")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	encPath := Folder(tmp).Path(EncoderFile)
	if err := exporter.WriteFile(encPath, m, exporter.Encoder, nil); err != nil {
		return nil, stagedError("export", string(f), err)
	}
	model, err := inference.Open(encPath, "", opts.Inference)
	if err != nil {
		return nil, err
	}
	defer model.Close()
	codes, err := EncodeSet(ctx, model, opts.Train, opts.Batch, opts.Progress)
	if err != nil {
		if errors.Is(err, ctx.Err()) {
			return nil, fmt.Errorf("export: interrupted: %w; nothing was written", err)
		}
		return nil, fmt.Errorf("export: %w", err)
	}
	stats, err := pca.Fit(codes, opts.Train.N, model.Bottleneck())
	if err != nil {
		return nil, fmt.Errorf("export: latent statistics: %w", err)
	}
	return stats, nil
}

// EncodeSet encodes every image of s with m, batch images per ONNX Runtime
// call (0 means 1000), and returns the codes, s.N·b values. progress, when
// not nil, is called after each batch. It checks that the images have the
// model's shape.
func EncodeSet(ctx context.Context, m *inference.Model, s *dataset.Set, batch int, progress func(done, total int)) ([]float32, error) {
	if batch <= 0 {
		batch = 1000
	}
	size := 1
	for _, d := range m.ImageShape() {
		size *= d
	}
	if s.N > 0 && s.Size() != size || len(s.Pixels) != s.N*size {
		return nil, fmt.Errorf("%s %s holds images of %d values, the encoder takes %v", s.Name, s.Split, len(s.Pixels)/max(s.N, 1), m.ImageShape())
	}
	var in []float32
	codes := make([]float32, 0, s.N*m.Bottleneck())
	for off := 0; off < s.N; off += batch {
		n := min(batch, s.N-off)
		in = s.Floats(in, off, n)
		c, err := m.EncodeContext(ctx, in, n)
		if err != nil {
			return nil, fmt.Errorf("encoding %s images %d to %d: %w", s.Split, off, off+n-1, err)
		}
		codes = append(codes, c...)
		if progress != nil {
			progress(off+n, s.N)
		}
	}
	return codes, nil
}

// readEncoderMetadata reads the latent metadata of an exported encoder, or
// nil for a file without any.
func readEncoderMetadata(path string) (*onnxmeta.Metadata, error) {
	md, err := exporter.ReadMetadata(path)
	if errors.Is(err, onnxmeta.ErrNotLatent) {
		return nil, nil
	}
	return md, err
}
