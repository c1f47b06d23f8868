// Package run owns a run folder: its layout and file names, opening it,
// checking whether its exported graphs are stale against its checkpoint,
// and the work done on it (export with the latent statistics, evaluation,
// the report), as library calls that take a context. The command line is a
// thin layer over it: it parses flags, loads data, calls, and prints.
//
// A run folder holds:
//
//	model.safetensors      the checkpoint of the last completed epoch (ModelFile)
//	optimizer.safetensors  the training state, for --resume (StateFile)
//	metrics.jsonl          one line of metrics per epoch (MetricsFile)
//	encoder.onnx           the exported encoder (EncoderFile)
//	decoder.onnx           the exported decoder (DecoderFile)
//	latent-stats.json      the Gaussian of the training codes (StatsFile)
//	eval.json              the metrics of the last evaluation (EvalFile)
//	splits.json            which of your own images are in which split (SplitsFile)
//	report/                the report: index.html and figures/ (ReportDir)
package run

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/latent-ai/latent/atomicfile"
	"github.com/latent-ai/latent/checkpoint"
	"github.com/latent-ai/latent/dataset"
	"github.com/latent-ai/latent/latentstats"
	"github.com/latent-ai/latent/onnxmeta"
	"github.com/latent-ai/latent/trainer"
)

// The files of a run folder.
const (
	ModelFile   = "model.safetensors"
	StateFile   = "optimizer.safetensors"
	MetricsFile = "metrics.jsonl"
	EncoderFile = onnxmeta.EncoderFile
	DecoderFile = onnxmeta.DecoderFile
	StatsFile   = latentstats.FileName
	EvalFile    = "eval.json"
	SplitsFile  = "splits.json"
	ReportDir   = "report"
)

// Folder is the path of a run folder.
type Folder string

// Path returns the path of the file name in the folder.
func (f Folder) Path(name string) string { return filepath.Join(string(f), name) }

// Trainer returns where the trainer writes the folder's checkpoint,
// training state and metrics.
func (f Folder) Trainer() trainer.Files {
	return trainer.Files{Model: f.Path(ModelFile), State: f.Path(StateFile), Metrics: f.Path(MetricsFile)}
}

// Exists returns an error, with what to do, when the folder does not exist
// or is not a folder.
func (f Folder) Exists() error {
	st, err := os.Stat(string(f))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("no run folder %s: it does not exist; train one with 'latent train --out %s' or import one with 'latent import', or name another", f, f)
	case err != nil:
		return fmt.Errorf("run folder %s: %w", f, pathCause(err))
	case !st.IsDir():
		return fmt.Errorf("%s is a file, not a run folder: name the folder that holds %s", f, ModelFile)
	}
	return nil
}

// Model loads the folder's checkpoint.
func (f Folder) Model() (*checkpoint.Model, error) {
	if err := f.Exists(); err != nil {
		return nil, err
	}
	if _, err := os.Stat(f.Path(ModelFile)); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s holds no %s: train a model into it (latent train --out %s) or import one (latent import)", f, ModelFile, f)
	}
	return checkpoint.Load(f.Path(ModelFile))
}

// Metrics reads the folder's per-epoch metrics; a folder without them (an
// imported model) gives none and no error.
func (f Folder) Metrics() ([]trainer.EpochMetrics, error) {
	m, err := trainer.ReadMetrics(f.Path(MetricsFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return m, err
}

// Exported reports whether the folder holds both exported graphs, and
// returns an error that says to export it when it does not.
func (f Folder) Exported() error {
	if err := f.Exists(); err != nil {
		return err
	}
	for _, name := range []string{EncoderFile, DecoderFile} {
		if _, err := os.Stat(f.Path(name)); err != nil {
			return fmt.Errorf("%s has no %s: run 'latent export %s' first", f, name, f)
		}
	}
	return nil
}

// Stale reports why the exported graphs no longer match the checkpoint, or
// "" when they do: the encoder's metadata must hold the checkpoint's
// architecture and the same training step and epoch. (An older export,
// without metadata, is compared by modification time.)
func (f Folder) Stale() (string, error) {
	m, err := f.Model()
	if err != nil {
		return "", err
	}
	if err := f.Exported(); err != nil {
		return "", err
	}
	md, err := readEncoderMetadata(f.Path(EncoderFile))
	if err != nil {
		return "", err
	}
	if md == nil {
		enc, err1 := os.Stat(f.Path(EncoderFile))
		mod, err2 := os.Stat(f.Path(ModelFile))
		if err1 == nil && err2 == nil && enc.ModTime().Before(mod.ModTime()) {
			return EncoderFile + " is older than " + ModelFile, nil
		}
		return "", nil
	}
	switch {
	case !md.Arch.Equal(m.Arch):
		return fmt.Sprintf("%s holds a %s model with bottleneck %d, %s a %s model with bottleneck %d",
			EncoderFile, md.Arch.Kind, md.Arch.Bottleneck, ModelFile, m.Arch.Kind, m.Arch.Bottleneck), nil
	case md.Training.Step != m.Meta.Step || md.Training.Epochs != m.Meta.Epochs || md.Training.Imported != m.Meta.Imported:
		return fmt.Sprintf("%s was exported after epoch %d (step %d), %s is at epoch %d (step %d)",
			EncoderFile, md.Training.Epochs, md.Training.Step, ModelFile, m.Meta.Epochs, m.Meta.Step), nil
	}
	return "", nil
}

// CheckWritable returns an error if no file can be created in dir or, when
// dir does not exist yet, in the nearest parent that does (where dir will
// be created). It creates nothing that it does not remove again. Call it
// before long work, so that a read-only or unwritable folder is reported at
// once rather than after minutes of training or encoding.
func CheckWritable(dir string) error {
	d := filepath.Clean(dir)
	if missing := atomicfile.MissingDirs(d); len(missing) > 0 {
		d = filepath.Dir(missing[len(missing)-1])
	}
	file, err := os.CreateTemp(d, ".latent-check-*")
	if err != nil {
		return fmt.Errorf("cannot write into %s: %w", d, pathCause(err))
	}
	file.Close()
	return os.Remove(file.Name())
}

// pathCause returns the cause inside a *fs.PathError, whose message names
// a temporary file that is gone by the time the user reads it, or err.
func pathCause(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// stage creates a hidden temporary folder in dir, named after what, for
// files that are moved into place only once all of them are written. The
// caller removes it.
func stage(dir, what string) (string, error) {
	tmp, err := os.MkdirTemp(dir, "."+what+"-")
	if err != nil {
		return "", fmt.Errorf("%s: cannot write into %s: %w", what, dir, pathCause(err))
	}
	return tmp, nil
}

// stagedError returns err, from writing into a staging folder the files
// meant for dst, as "WHAT: cannot write into DST: CAUSE" when the system
// refused the write, so that the message names where the files were going
// rather than a temporary file that is gone; any other error is returned
// as it is.
func stagedError(what, dst string, err error) error {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return fmt.Errorf("%s: cannot write into %s: %w", what, dst, errno)
	}
	return err
}

// replaceDir moves the folder src to dst, which it replaces: a folder
// already at dst is moved aside first, then removed once src is in place,
// or moved back if that fails. src and dst must be on the same disk.
func replaceDir(src, dst string) error {
	aside := src + ".old"
	hadOld := true
	if err := os.Rename(dst, aside); errors.Is(err, fs.ErrNotExist) {
		hadOld = false
	} else if err != nil {
		return fmt.Errorf("replace %s: %w", dst, err)
	}
	if err := os.Rename(src, dst); err != nil {
		if hadOld {
			os.Rename(aside, dst)
		}
		return fmt.Errorf("replace %s: %w", dst, err)
	}
	if hadOld {
		if err := os.RemoveAll(aside); err != nil {
			return fmt.Errorf("replace %s: remove the old one: %w", dst, err)
		}
	}
	return nil
}

// SaveSplits writes SplitsFile: the IDs of the images of each split, for a
// run on the user's own images, atomically.
func (f Folder) SaveSplits(train, test *dataset.Set) error {
	if err := os.MkdirAll(string(f), 0o755); err != nil {
		return fmt.Errorf("save splits: %w", err)
	}
	b, err := json.MarshalIndent(map[string][]string{"train": train.IDs, "test": test.IDs}, "", " ")
	if err != nil {
		return err
	}
	return atomicfile.WriteBytes(f.Path(SplitsFile), append(b, '\n'), 0o644)
}
