// Package checkpoint reads and writes latent's model files.
//
// A model is one safetensors file (model.safetensors). Its tensors are
// float32, named and shaped as in a PyTorch state dict of the notebook's
// classes ("encoder.1.weight" [512, 784], ...), so that
// model.load_state_dict(tensors, strict=True) works in PyTorch. Its metadata
// holds the architecture declaration and a training summary.
//
// The optimizer state of a training run is a second safetensors file
// (optimizer.safetensors) with the Adam moments of every parameter, named
// "exp_avg.<param>" and "exp_avg_sq.<param>".
//
// All writes are atomic.
package checkpoint

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/latent-ai/latent/atomicfile"
	"github.com/latent-ai/latent/models"
	"github.com/nlpodyssey/safetensors"
)

// Format identifies latent's model files in their metadata.
const Format = "latent/1"

// Meta is the training summary stored beside the weights.
type Meta struct {
	Dataset string `json:"dataset"`
	// Epochs is the number of epochs completed.
	Epochs  int     `json:"epochs"`
	Seed    int64   `json:"seed"`
	Batch   int     `json:"batch"`
	LR      float64 `json:"lr"`
	Shuffle bool    `json:"shuffle"`
	Limit   int     `json:"limit,omitempty"`
	// TrainLoss and TestLoss hold one mean MSE per completed epoch.
	TrainLoss []float64 `json:"train_loss"`
	TestLoss  []float64 `json:"test_loss"`
	// Step is the number of optimizer steps taken.
	Step int `json:"step"`
	// EpochsPlanned is the number of epochs the run was asked for.
	EpochsPlanned int `json:"epochs_planned"`
}

// Model is an architecture and its weights.
type Model struct {
	Arch models.Arch
	Meta Meta
	// Params maps state-dict names to values in PyTorch layout; the shapes
	// are those of Arch.Params().
	Params map[string][]float32
}

// NewModel returns a model of arch with zeroed weights.
func NewModel(arch models.Arch) *Model {
	m := &Model{Arch: arch, Params: make(map[string][]float32)}
	for _, p := range arch.Params() {
		m.Params[p.Name] = make([]float32, p.Size())
	}
	return m
}

// Save writes the model to path atomically.
func (m *Model) Save(path string) error {
	if err := checkParams(m.Arch, m.Params, ""); err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	meta, err := json.Marshal(m.Meta)
	if err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	info := map[string]string{
		"format":     Format,
		"kind":       m.Arch.Kind,
		"bottleneck": strconv.Itoa(m.Arch.Bottleneck),
		"arch":       m.Arch.JSON(),
		"dataset":    m.Meta.Dataset,
		"epochs":     strconv.Itoa(m.Meta.Epochs),
		"seed":       strconv.FormatInt(m.Meta.Seed, 10),
		"training":   string(meta),
	}
	return writeTensors(path, tensorsFor(m.Arch, m.Params, ""), info)
}

// Load reads a model file and checks it against its own declaration: every
// tensor present with the right shape, none extra, all values finite.
func Load(path string) (*Model, error) {
	st, info, err := readTensors(path)
	if err != nil {
		return nil, err
	}
	arch, err := archOf(info)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	m := &Model{Arch: arch}
	if s := info["training"]; s != "" {
		if err := json.Unmarshal([]byte(s), &m.Meta); err != nil {
			return nil, fmt.Errorf("load %s: training metadata: %w", path, err)
		}
	}
	if m.Params, err = paramsFrom(st, arch, ""); err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	return m, nil
}

// LoadFor reads a model file and checks that it holds the architecture want.
func LoadFor(path string, want models.Arch) (*Model, error) {
	m, err := Load(path)
	if err != nil {
		return nil, err
	}
	if !m.Arch.Equal(want) {
		return nil, fmt.Errorf("load %s: it holds a %s model with bottleneck %d, not the %s model with bottleneck %d asked for",
			path, m.Arch.Kind, m.Arch.Bottleneck, want.Kind, want.Bottleneck)
	}
	return m, nil
}

// archOf rebuilds the architecture from metadata. Files written by PyTorch
// (bench/torch_roundtrip.py) carry only kind and bottleneck.
func archOf(info map[string]string) (models.Arch, error) {
	if s := info["arch"]; s != "" {
		return models.ParseJSON(s)
	}
	kind := info["kind"]
	if kind == "" {
		return models.Arch{}, errors.New("no model kind in the metadata: not a latent model file")
	}
	b, err := strconv.Atoi(info["bottleneck"])
	if err != nil {
		return models.Arch{}, fmt.Errorf("bad bottleneck %q in the metadata", info["bottleneck"])
	}
	return models.New(kind, b)
}

// Adam is the optimizer state of a run: the step count and the first and
// second moments of each parameter, keyed by state-dict name.
type Adam struct {
	Step     int
	ExpAvg   map[string][]float32
	ExpAvgSq map[string][]float32
}

// SaveAdam writes the optimizer state of a model of arch to path atomically.
// epochs tags the file so that a resume can check it matches the model.
func SaveAdam(path string, arch models.Arch, st *Adam, epochs int) error {
	if err := checkParams(arch, st.ExpAvg, "exp_avg "); err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	if err := checkParams(arch, st.ExpAvgSq, "exp_avg_sq "); err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	ts := tensorsFor(arch, st.ExpAvg, "exp_avg.")
	for k, v := range tensorsFor(arch, st.ExpAvgSq, "exp_avg_sq.") {
		ts[k] = v
	}
	info := map[string]string{
		"format": Format, "kind": arch.Kind, "arch": arch.JSON(),
		"step": strconv.Itoa(st.Step), "epochs": strconv.Itoa(epochs),
	}
	return writeTensors(path, ts, info)
}

// LoadAdam reads the optimizer state written by SaveAdam for a model of
// arch, and the number of epochs it was saved after.
func LoadAdam(path string, arch models.Arch) (*Adam, int, error) {
	st, info, err := readTensors(path)
	if err != nil {
		return nil, 0, err
	}
	got, err := archOf(info)
	if err != nil {
		return nil, 0, fmt.Errorf("load %s: %w", path, err)
	}
	if !got.Equal(arch) {
		return nil, 0, fmt.Errorf("load %s: optimizer state of a %s model, not %s", path, got.Kind, arch.Kind)
	}
	if st.Len() != 2*len(arch.Params()) {
		return nil, 0, fmt.Errorf("load %s: %d tensors, want %d moments", path, st.Len(), 2*len(arch.Params()))
	}
	a := &Adam{}
	if a.Step, err = strconv.Atoi(info["step"]); err != nil || a.Step < 0 {
		return nil, 0, fmt.Errorf("load %s: bad step %q", path, info["step"])
	}
	epochs, err := strconv.Atoi(info["epochs"])
	if err != nil {
		return nil, 0, fmt.Errorf("load %s: bad epochs %q", path, info["epochs"])
	}
	if a.ExpAvg, err = paramsFrom(st, arch, "exp_avg."); err != nil {
		return nil, 0, fmt.Errorf("load %s: %w", path, err)
	}
	if a.ExpAvgSq, err = paramsFrom(st, arch, "exp_avg_sq."); err != nil {
		return nil, 0, fmt.Errorf("load %s: %w", path, err)
	}
	return a, epochs, nil
}

// Info describes a model file without checking its tensors.
type Info struct {
	Metadata map[string]string
	Tensors  []TensorInfo
}

// TensorInfo is the name, type and shape of one stored tensor.
type TensorInfo struct {
	Name  string
	DType string
	Shape []uint64
}

// Inspect lists what a safetensors file holds.
func Inspect(path string) (*Info, error) {
	st, info, err := readTensors(path)
	if err != nil {
		return nil, err
	}
	out := &Info{Metadata: info}
	for _, t := range st.Tensors() {
		out.Tensors = append(out.Tensors, TensorInfo{Name: t.Name, DType: t.TensorView.DType().String(), Shape: t.TensorView.Shape()})
	}
	sort.Slice(out.Tensors, func(i, j int) bool { return out.Tensors[i].Name < out.Tensors[j].Name })
	return out, nil
}

func checkParams(arch models.Arch, params map[string][]float32, what string) error {
	for _, p := range arch.Params() {
		v, ok := params[p.Name]
		if !ok {
			return fmt.Errorf("%s%s missing", what, p.Name)
		}
		if len(v) != p.Size() {
			return fmt.Errorf("%s%s has %d values, want %d", what, p.Name, len(v), p.Size())
		}
	}
	if len(params) != len(arch.Params()) {
		return fmt.Errorf("%d %stensors, want %d", len(params), what, len(arch.Params()))
	}
	return nil
}

func tensorsFor(arch models.Arch, params map[string][]float32, prefix string) map[string]safetensors.TensorView {
	ts := make(map[string]safetensors.TensorView)
	for _, p := range arch.Params() {
		shape := make([]uint64, len(p.Shape))
		for i, d := range p.Shape {
			shape[i] = uint64(d)
		}
		tv, _ := safetensors.NewTensorView(safetensors.F32, shape, float32Bytes(params[p.Name]))
		ts[prefix+p.Name] = tv
	}
	return ts
}

func paramsFrom(st safetensors.SafeTensors, arch models.Arch, prefix string) (map[string][]float32, error) {
	want := make(map[string]bool)
	out := make(map[string][]float32)
	for _, p := range arch.Params() {
		name := prefix + p.Name
		want[name] = true
		tv, ok := st.Tensor(name)
		if !ok {
			return nil, fmt.Errorf("tensor %s missing: the file is not a %s model with bottleneck %d", name, arch.Kind, arch.Bottleneck)
		}
		if tv.DType() != safetensors.F32 {
			return nil, fmt.Errorf("tensor %s is %s, want F32", name, tv.DType())
		}
		if !sameShape(tv.Shape(), p.Shape) {
			return nil, fmt.Errorf("tensor %s has shape %v, want %v", name, tv.Shape(), p.Shape)
		}
		v := bytesFloat32(tv.Data())
		for i, x := range v {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				return nil, fmt.Errorf("tensor %s holds %v at index %d: the model diverged or the file is damaged", name, x, i)
			}
		}
		out[p.Name] = v
	}
	for _, n := range st.Names() {
		if !want[n] && strings.HasPrefix(n, prefix) {
			return nil, fmt.Errorf("unexpected tensor %s: the file is not a %s model with bottleneck %d", n, arch.Kind, arch.Bottleneck)
		}
	}
	return out, nil
}

func writeTensors(path string, ts map[string]safetensors.TensorView, info map[string]string) error {
	var buf bytes.Buffer
	if err := safetensors.SerializeToWriter(ts, info, &buf); err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	return atomicfile.WriteBytes(path, buf.Bytes(), 0o644)
}

func readTensors(path string) (safetensors.SafeTensors, map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return safetensors.SafeTensors{}, nil, fmt.Errorf("load model: %w", err)
	}
	st, err := safetensors.Deserialize(data)
	if err != nil {
		return safetensors.SafeTensors{}, nil, fmt.Errorf("load %s: not a valid safetensors file (%v): it is truncated or damaged; retrain or restore it", path, err)
	}
	_, md, _ := safetensors.ReadMetadata(data)
	info := md.Metadata()
	if info == nil {
		info = map[string]string{}
	}
	return st, info, nil
}

func sameShape(a []uint64, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != uint64(b[i]) {
			return false
		}
	}
	return true
}

func float32Bytes(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

func bytesFloat32(b []byte) []float32 {
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}
