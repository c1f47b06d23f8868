package run

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/latent-ai/latent/checkpoint"
	"github.com/latent-ai/latent/dataset"
	"github.com/latent-ai/latent/models"
)

// newFolder writes a small classic model into a new run folder.
func newFolder(t *testing.T) (Folder, *checkpoint.Model) {
	t.Helper()
	arch, err := models.New("classic", 3)
	if err != nil {
		t.Fatal(err)
	}
	m := checkpoint.NewModel(arch)
	for _, p := range arch.Params() {
		for i := range m.Params[p.Name] {
			m.Params[p.Name][i] = float32(0.05 * math.Sin(float64(i+len(p.Name))))
		}
	}
	m.Meta = checkpoint.Meta{Dataset: "mnist", Epochs: 1, Step: 10}
	f := Folder(t.TempDir())
	if err := m.Save(f.Path(ModelFile)); err != nil {
		t.Fatal(err)
	}
	return f, m
}

// randomSet returns n random images of 28×28.
func randomSet(n int) *dataset.Set {
	s := &dataset.Set{Name: "random", Split: dataset.Train, N: n, Rows: 28, Cols: 28, Pixels: make([]uint8, n*784), Labels: make([]uint8, n)}
	for i := range s.Pixels {
		s.Pixels[i] = uint8((i * 7919) % 255)
	}
	return s
}

func TestModelErrors(t *testing.T) {
	empty := Folder(t.TempDir())
	if _, err := empty.Model(); err == nil || !strings.Contains(err.Error(), "holds no model.safetensors") {
		t.Errorf("empty folder: %v", err)
	}
	if _, err := Folder(filepath.Join(string(empty), "none")).Model(); err == nil || !strings.Contains(err.Error(), "no run folder") {
		t.Errorf("missing folder: %v", err)
	}
	if err := empty.Exported(); err == nil || !strings.Contains(err.Error(), "latent export") {
		t.Errorf("Exported of a folder without graphs: %v", err)
	}
}

// TestExportAndStale exports a run with statistics, checks the files, and
// checks that Stale notices a checkpoint saved after the export.
func TestExportAndStale(t *testing.T) {
	f, m := newFolder(t)
	paths, stats, err := f.Export(context.Background(), ExportOptions{Train: randomSet(50), Batch: 7})
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 3 || stats == nil || stats.N != 50 || stats.Dim != 3 {
		t.Fatalf("paths %v, stats %+v", paths, stats)
	}
	for _, name := range []string{EncoderFile, DecoderFile, StatsFile} {
		if _, err := os.Stat(f.Path(name)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if why, err := f.Stale(); err != nil || why != "" {
		t.Fatalf("fresh export: stale %q, %v", why, err)
	}
	m.Meta.Epochs, m.Meta.Step = 2, 20
	if err := m.Save(f.Path(ModelFile)); err != nil {
		t.Fatal(err)
	}
	if why, err := f.Stale(); err != nil || !strings.Contains(why, "exported after epoch 1 (step 10)") {
		t.Errorf("after another epoch: stale %q, %v", why, err)
	}
	// A cancelled export writes nothing.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	before, _ := os.ReadFile(f.Path(EncoderFile))
	if _, _, err := f.Export(ctx, ExportOptions{Train: randomSet(50)}); err == nil || !strings.Contains(err.Error(), "nothing was written") {
		t.Errorf("cancelled export: %v", err)
	}
	if after, _ := os.ReadFile(f.Path(EncoderFile)); string(after) != string(before) {
		t.Error("a cancelled export changed encoder.onnx")
	}
	entries, _ := os.ReadDir(string(f))
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("left behind %s", e.Name())
		}
	}
}

func TestCheckWritable(t *testing.T) {
	dir := t.TempDir()
	if err := CheckWritable(filepath.Join(dir, "a", "b")); err != nil {
		t.Errorf("a folder to be made in a writable one: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "a")); err == nil {
		t.Error("CheckWritable made a folder")
	}
	if os.Geteuid() != 0 {
		ro := filepath.Join(dir, "ro")
		os.Mkdir(ro, 0o555)
		if err := CheckWritable(ro); err == nil || !strings.Contains(err.Error(), "cannot write into") {
			t.Errorf("a read-only folder: %v", err)
		}
	}
}
