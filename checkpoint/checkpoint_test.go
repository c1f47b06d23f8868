package checkpoint

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/latent-ai/latent/models"
)

func testModel(t *testing.T, kind string) *Model {
	t.Helper()
	arch, err := models.New(kind, 10)
	if err != nil {
		t.Fatal(err)
	}
	m := NewModel(arch)
	for name, v := range m.Params {
		for i := range v {
			v[i] = float32(len(name)+i%7) * 0.01
		}
	}
	m.Meta = Meta{Dataset: "mnist", Epochs: 2, EpochsPlanned: 5, Seed: 3, Batch: 64, LR: 1e-3,
		TrainLoss: []float64{0.05, 0.03}, TestLoss: []float64{0.04, 0.02}, Step: 1876}
	return m
}

func TestSaveLoadRoundTrip(t *testing.T) {
	for _, kind := range models.Kinds() {
		m := testModel(t, kind)
		path := filepath.Join(t.TempDir(), "model.safetensors")
		if err := m.Save(path); err != nil {
			t.Fatal(err)
		}
		got, err := LoadFor(path, m.Arch)
		if err != nil {
			t.Fatal(err)
		}
		if got.Meta.Step != 1876 || got.Meta.Dataset != "mnist" || len(got.Meta.TrainLoss) != 2 {
			t.Errorf("%s: meta %+v", kind, got.Meta)
		}
		for name, v := range m.Params {
			for i := range v {
				if got.Params[name][i] != v[i] {
					t.Fatalf("%s %s[%d]: got %v want %v", kind, name, i, got.Params[name][i], v[i])
				}
			}
		}
		info, err := Inspect(path)
		if err != nil {
			t.Fatal(err)
		}
		if len(info.Tensors) != len(m.Arch.Params()) || info.Metadata["kind"] != kind {
			t.Errorf("%s: inspect %d tensors, metadata %v", kind, len(info.Tensors), info.Metadata)
		}
	}
}

func TestStateRoundTrip(t *testing.T) {
	m := testModel(t, "conv")
	st := &Adam{Step: 12, ExpAvg: m.Params, ExpAvgSq: m.Params}
	path := filepath.Join(t.TempDir(), "optimizer.safetensors")
	if err := SaveState(path, m, st); err != nil {
		t.Fatal(err)
	}
	gotM, got, err := LoadState(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.Step != 12 || gotM.Meta.Epochs != 2 || got.ExpAvg["decoder.7.bias"][0] != m.Params["decoder.7.bias"][0] ||
		gotM.Params["encoder.0.weight"][3] != m.Params["encoder.0.weight"][3] {
		t.Errorf("got step %d epochs %d", got.Step, gotM.Meta.Epochs)
	}
	// A model file is not a training state.
	model := filepath.Join(t.TempDir(), "model.safetensors")
	if err := m.Save(model); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadState(model); err == nil || !strings.Contains(err.Error(), "not a training state") {
		t.Errorf("loaded a model file as a training state: %v", err)
	}
}

// TestBadFiles checks that damaged files and files of another model give
// clear errors, and that a failed save leaves the old file in place.
func TestBadFiles(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.safetensors")
	m := testModel(t, "classic")
	if err := m.Save(good); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(good)
	nan := testModel(t, "classic")
	nan.Params["decoder.2.weight"][5] = float32(math.NaN())

	other, _ := models.New("conv", 10)
	wide, _ := models.New("classic", 12)
	cases := []struct {
		name  string
		bytes []byte
		want  string
		arch  *models.Arch
	}{
		{"empty", nil, "not a valid safetensors file", nil},
		{"truncated", data[:len(data)/2], "truncated or damaged", nil},
		{"header cut", data[:20], "truncated or damaged", nil},
		{"garbage", []byte(strings.Repeat("latent", 100)), "not a valid safetensors file", nil},
		{"other kind", data, "holds a classic model with bottleneck 10, not the conv model", &other},
		{"other bottleneck", data, "not the classic model with bottleneck 12", &wide},
	}
	for _, tc := range cases {
		path := filepath.Join(dir, tc.name+".safetensors")
		if err := os.WriteFile(path, tc.bytes, 0o644); err != nil {
			t.Fatal(err)
		}
		var err error
		if tc.arch != nil {
			_, err = LoadFor(path, *tc.arch)
		} else {
			_, err = Load(path)
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got error %v, want one containing %q", tc.name, err, tc.want)
		}
	}

	// A NaN weight is refused on load.
	nanPath := filepath.Join(dir, "nan.safetensors")
	if err := nan.Save(nanPath); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(nanPath); err == nil || !strings.Contains(err.Error(), "NaN") {
		t.Errorf("NaN weight: got %v", err)
	}

	// A save that fails (a tensor missing) leaves the old file untouched.
	broken := testModel(t, "classic")
	delete(broken.Params, "encoder.0.bias")
	if err := broken.Save(good); err == nil {
		t.Error("saved a model with a missing tensor")
	}
	if after, _ := os.ReadFile(good); string(after) != string(data) {
		t.Error("a failed save changed the file")
	}
	if entries, _ := filepath.Glob(filepath.Join(dir, ".*tmp*")); len(entries) > 0 {
		t.Errorf("temporary files left behind: %v", entries)
	}
}

// TestOlderClassicNamesLoad writes a classic model file and a training
// state as latent wrote them before its names followed the notebook's
// class (flatten inside the encoder's Sequential: encoder.1/3/5), and checks
// that both load under today's names with the same values, and that a save
// writes today's names.
func TestOlderClassicNamesLoad(t *testing.T) {
	now := testModel(t, "classic")
	old := &Model{Arch: now.Arch.Indexed(), Meta: now.Meta, Params: map[string][]float32{}}
	adam := &Adam{Step: 5, ExpAvg: map[string][]float32{}, ExpAvgSq: map[string][]float32{}}
	for i, p := range old.Arch.Params() {
		v := now.Params[now.Arch.Params()[i].Name]
		old.Params[p.Name] = v
		adam.ExpAvg[p.Name], adam.ExpAvgSq[p.Name] = v, v
	}
	if _, ok := old.Params["encoder.5.bias"]; !ok {
		t.Fatal("the older layout has no encoder.5.bias")
	}
	dir := t.TempDir()
	path, state := filepath.Join(dir, "model.safetensors"), filepath.Join(dir, "optimizer.safetensors")
	if err := old.Save(path); err != nil {
		t.Fatal(err)
	}
	if err := SaveState(state, old, adam); err != nil {
		t.Fatal(err)
	}
	got, err := LoadFor(path, now.Arch)
	if err != nil {
		t.Fatalf("older file: %v", err)
	}
	gotM, gotA, err := LoadState(state)
	if err != nil {
		t.Fatalf("older training state: %v", err)
	}
	for _, p := range now.Arch.Params() {
		for _, c := range []struct {
			what string
			v    []float32
		}{{"model", got.Params[p.Name]}, {"state", gotM.Params[p.Name]}, {"exp_avg", gotA.ExpAvg[p.Name]}} {
			if !slices.Equal(c.v, now.Params[p.Name]) {
				t.Fatalf("%s %s: not the values stored under the older name", c.what, p.Name)
			}
		}
	}
	if err := got.Save(path); err != nil {
		t.Fatal(err)
	}
	info, err := Inspect(path)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, ti := range info.Tensors {
		names = append(names, ti.Name)
	}
	if want := "decoder.0.bias decoder.0.weight decoder.2.bias decoder.2.weight decoder.4.bias decoder.4.weight " +
		"encoder.0.bias encoder.0.weight encoder.2.bias encoder.2.weight encoder.4.bias encoder.4.weight"; strings.Join(names, " ") != want {
		t.Errorf("written back as %s, want %s", strings.Join(names, " "), want)
	}
}
