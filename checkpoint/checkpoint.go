// Package checkpoint reads and writes latent's model files.
//
// A model is one safetensors file (model.safetensors). Its tensors are
// float32, named and shaped as in a PyTorch state dict of the notebook's
// classes ("encoder.0.weight" [512, 784], ...), so that
// model.load_state_dict(tensors, strict=True) works in PyTorch. Files
// written before latent followed the notebook's classic names (encoder.1/3/5)
// still load, and are written back with today's names. Its metadata
// holds the architecture declaration and a training summary.
//
// The training state of a run is a second safetensors file
// (optimizer.safetensors): the weights again with the Adam moments of every
// parameter, so that a resume never mixes steps (see SaveState).
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
	// Data lists the files the run trained and tested on, with the MD5 of
	// their content, as the data set reader found them.
	Data []DataFile `json:"data,omitempty"`
	// Imported is the file that `latent import` read the weights from, for
	// a model trained elsewhere (the other fields then hold no recipe).
	Imported string `json:"imported,omitempty"`
	// Source is the user's own image source the run trained on (nil for
	// MNIST and Fashion-MNIST's IDX files): the commands that need the data
	// again read it from there, split the same way.
	Source *Source `json:"source,omitempty"`
	// Schedule is the run's learning-rate schedule; nil is a constant
	// rate, the notebook's.
	Schedule *Schedule `json:"schedule,omitempty"`
	// Validation is the share of the training images held out to validate
	// on (drawn with Seed); Patience, the epochs without a better
	// validation MSE after which the run stops early (0: never).
	Validation float64 `json:"validation,omitempty"`
	// WeightDecay is AdamW's decoupled weight decay (0: Adam).
	WeightDecay float64 `json:"weight_decay,omitempty"`
	// LRScale multiplies the learning rate of some parameters, by their
	// state-dict or module names (nil: every parameter learns at LR).
	LRScale  map[string]float64 `json:"lr_scale,omitempty"`
	Patience int                `json:"patience,omitempty"`
	// ValLoss holds the validation MSE of each completed epoch.
	ValLoss []float64 `json:"val_loss,omitempty"`
	// Stopped is whether the run stopped early, before its planned epochs.
	Stopped bool `json:"stopped,omitempty"`
	// Beta weighs the KL term of a variational model's loss.
	Beta float64 `json:"beta,omitempty"`
	// TestNegELBO holds, for a variational model, the negative ELBO per
	// test image (binary cross-entropy plus KL, in nats) of each completed
	// epoch.
	TestNegELBO []float64 `json:"test_neg_elbo,omitempty"`
}

// Schedule is a learning-rate schedule (see trainer.Schedule).
type Schedule struct {
	Kind   string  `json:"kind"`             // "cosine" or "step"
	Warmup int     `json:"warmup,omitempty"` // steps of linear warm-up
	Every  int     `json:"every,omitempty"`  // step: epochs between decays
	Gamma  float64 `json:"gamma,omitempty"`  // step: the factor of each decay
}

// Source is an image source of the user's own (see dataset.Open) and how
// it was read.
type Source struct {
	Path         string  `json:"path"`
	Format       string  `json:"format"`
	Fit          string  `json:"fit,omitempty"`
	TestFraction float64 `json:"test_fraction"`
	Seed         uint64  `json:"seed"`
}

// DataFile is one data file that a run read.
type DataFile struct {
	Split string `json:"split"` // "train" or "test"
	Path  string `json:"path"`
	MD5   string `json:"md5"` // hex MD5 of the decompressed content
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
	b, err := m.encode()
	if err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	return atomicfile.WriteBytes(path, b, 0o644)
}

// encode returns the model as the bytes of a model file.
func (m *Model) encode() ([]byte, error) {
	if err := checkParams(m.Arch, m.Params, ""); err != nil {
		return nil, err
	}
	meta, err := json.Marshal(m.Meta)
	if err != nil {
		return nil, err
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
	return encodeTensors(tensorsFor(m.Arch, m.Params, ""), info)
}

// Load reads a model file and checks it against its own declaration: an
// architecture that models.Arch.Validate accepts (or, in files written by PyTorch, a
// kind and a bottleneck that models.New accepts), every tensor of
// Arch.Params() present as F32 with its shape, none extra, all values
// finite. Metadata keys "kind" and "bottleneck", when present beside the
// declaration, must agree with it.
func Load(path string) (*Model, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load model: %w", err)
	}
	m, err := parseModel(data)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	return m, nil
}

// parseModel parses the bytes of a model file; see Load.
func parseModel(data []byte) (*Model, error) {
	st, info, err := parseTensors(data)
	if err != nil {
		return nil, err
	}
	arch, err := archOf(info)
	if err != nil {
		return nil, err
	}
	m := &Model{Arch: arch}
	if s := info["training"]; s != "" {
		if err := json.Unmarshal([]byte(s), &m.Meta); err != nil {
			return nil, fmt.Errorf("training metadata: %w", err)
		}
	}
	if m.Params, err = paramsFrom(st, arch, ""); err != nil {
		return nil, err
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
		a, err := models.ParseJSON(s)
		if err != nil {
			return models.Arch{}, err
		}
		if k, ok := info["kind"]; ok && k != a.Kind {
			return models.Arch{}, fmt.Errorf("metadata kind %q but the architecture is %q", k, a.Kind)
		}
		if b, ok := info["bottleneck"]; ok && b != strconv.Itoa(a.Bottleneck) {
			return models.Arch{}, fmt.Errorf("metadata bottleneck %q but the architecture's is %d", b, a.Bottleneck)
		}
		return a, nil
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

// SaveState writes the training state of a run to path atomically: the
// model's weights and training summary together with the optimizer state
// that goes with them, in one file, so that a crash can never leave weights
// and moments from different steps. Tensors are named "param.<name>",
// "exp_avg.<name>" and "exp_avg_sq.<name>".
func SaveState(path string, m *Model, st *Adam) error {
	b, err := encodeState(m, st)
	if err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	return atomicfile.WriteBytes(path, b, 0o644)
}

// encodeState returns the bytes of a training-state file; see SaveState.
func encodeState(m *Model, st *Adam) ([]byte, error) {
	for prefix, ps := range map[string]map[string][]float32{"": m.Params, "exp_avg ": st.ExpAvg, "exp_avg_sq ": st.ExpAvgSq} {
		if err := checkParams(m.Arch, ps, prefix); err != nil {
			return nil, err
		}
	}
	meta, err := json.Marshal(m.Meta)
	if err != nil {
		return nil, err
	}
	ts := tensorsFor(m.Arch, m.Params, "param.")
	for k, v := range tensorsFor(m.Arch, st.ExpAvg, "exp_avg.") {
		ts[k] = v
	}
	for k, v := range tensorsFor(m.Arch, st.ExpAvgSq, "exp_avg_sq.") {
		ts[k] = v
	}
	info := map[string]string{
		"format": Format, "kind": m.Arch.Kind, "arch": m.Arch.JSON(),
		"step": strconv.Itoa(st.Step), "training": string(meta),
	}
	return encodeTensors(ts, info)
}

// LoadState reads a training state written by SaveState and checks it as
// Load checks a model: the architecture, and each of the three sets of
// tensors ("param.", "exp_avg.", "exp_avg_sq.") complete, F32, of the right
// shapes and finite, and nothing else; a step >= 0 and a training summary.
func LoadState(path string) (*Model, *Adam, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("load model: %w", err)
	}
	m, a, err := parseState(data)
	if err != nil {
		return nil, nil, fmt.Errorf("load %s: %w", path, err)
	}
	return m, a, nil
}

// parseState parses the bytes of a training-state file; see LoadState.
func parseState(data []byte) (*Model, *Adam, error) {
	st, info, err := parseTensors(data)
	if err != nil {
		return nil, nil, err
	}
	arch, err := archOf(info)
	if err != nil {
		return nil, nil, err
	}
	if st.Len() != 3*len(arch.Params()) {
		return nil, nil, fmt.Errorf("%d tensors, want %d (weights and two moments): not a training state", st.Len(), 3*len(arch.Params()))
	}
	m := &Model{Arch: arch}
	if err := json.Unmarshal([]byte(info["training"]), &m.Meta); err != nil {
		return nil, nil, fmt.Errorf("training metadata: %w", err)
	}
	a := &Adam{}
	if a.Step, err = strconv.Atoi(info["step"]); err != nil || a.Step < 0 {
		return nil, nil, fmt.Errorf("bad step %q", info["step"])
	}
	if m.Params, err = paramsFrom(st, arch, "param."); err != nil {
		return nil, nil, err
	}
	if a.ExpAvg, err = paramsFrom(st, arch, "exp_avg."); err != nil {
		return nil, nil, err
	}
	if a.ExpAvgSq, err = paramsFrom(st, arch, "exp_avg_sq."); err != nil {
		return nil, nil, err
	}
	return m, a, nil
}

// Info describes a model file without checking its tensors.
type Info struct {
	Metadata map[string]string
	Tensors  []TensorInfo
}

// TensorInfo is the name, type and shape of one stored tensor.
type TensorInfo struct {
	Name  string   `json:"name"`
	DType string   `json:"dtype"`
	Shape []uint64 `json:"shape"`
}

// Inspect lists what a safetensors file holds, its tensors sorted by name.
// Metadata is never nil.
func Inspect(path string) (*Info, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load model: %w", err)
	}
	out, err := parseInfo(data)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	return out, nil
}

// parseInfo parses the bytes of a safetensors file; see Inspect.
func parseInfo(data []byte) (*Info, error) {
	st, info, err := parseTensors(data)
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

// storedParams returns arch.Params() as a file names them: today's names,
// or, for a file of the older layout (models.Arch.Indexed) that has the
// older first name and not today's, the older ones, in the same order.
// has reports whether the file holds a tensor of that name.
func storedParams(arch models.Arch, has func(name string) bool) []models.Param {
	now, old := arch.Params(), arch.Indexed().Params()
	if len(now) > 0 && old[0].Name != now[0].Name && !has(now[0].Name) && has(old[0].Name) {
		return old
	}
	return now
}

// paramsFrom reads the tensors of arch.Params() named prefix+name from st,
// keyed by name. A file of the older layout (models.Arch.Indexed), whose
// classic tensors are encoder.1/3/5, is read by those names, and its tensors
// come back under today's names.
func paramsFrom(st safetensors.SafeTensors, arch models.Arch, prefix string) (map[string][]float32, error) {
	want := make(map[string]bool)
	out := make(map[string][]float32)
	stored := storedParams(arch, func(name string) bool { _, ok := st.Tensor(prefix + name); return ok })
	for i, p := range arch.Params() {
		name := prefix + stored[i].Name
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

func encodeTensors(ts map[string]safetensors.TensorView, info map[string]string) ([]byte, error) {
	var buf bytes.Buffer
	if err := safetensors.SerializeToWriter(ts, info, &buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// parseTensors parses a safetensors file and returns its tensors and its
// metadata (never nil).
func parseTensors(data []byte) (safetensors.SafeTensors, map[string]string, error) {
	st, err := safetensors.Deserialize(data)
	if err != nil {
		return safetensors.SafeTensors{}, nil, fmt.Errorf("not a valid safetensors file (%v): it is truncated or damaged; retrain or restore it", err)
	}
	_, md, err := safetensors.ReadMetadata(data)
	if err != nil {
		return safetensors.SafeTensors{}, nil, fmt.Errorf("not a valid safetensors file (%v)", err)
	}
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
