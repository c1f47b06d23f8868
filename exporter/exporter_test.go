package exporter

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/advancedclimatesystems/gonnx/onnx"
	"github.com/latent-ai/latent/checkpoint"
	"github.com/latent-ai/latent/internal/modeltest"
	"github.com/latent-ai/latent/latentstats"
	"github.com/latent-ai/latent/models"
	"github.com/latent-ai/latent/onnxmeta"
	"github.com/latent-ai/latent/pca"
	"google.golang.org/protobuf/proto"
)

// randomModel returns a model of the given kind with PyTorch's default
// initialisation, uniform in ±1/sqrt(fan-in), from a fixed seed.
func randomModel(t testing.TB, kind string, bottleneck int, seed uint64) *checkpoint.Model {
	t.Helper()
	m := modeltest.Random(t, kind, bottleneck, seed)
	m.Meta = checkpoint.Meta{Dataset: "mnist", Epochs: 2, Seed: int64(seed), Batch: 64, LR: 1e-3,
		TrainLoss: []float64{0.05, 0.03}, TestLoss: []float64{0.04, 0.03}, Step: 1876}
	return m
}

// randomStats fits stats to random codes of size d.
func randomStats(t testing.TB, d int) *latentstats.Stats {
	t.Helper()
	rng := rand.New(rand.NewPCG(7, 7))
	codes := make([]float32, 100*d)
	for i := range codes {
		codes[i] = float32(rng.NormFloat64() * float64(1+i%d))
	}
	s, err := pca.Fit(codes, 100, d)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestBuildFollowsTheDeclaration(t *testing.T) {
	ops := map[models.Op]string{
		models.Linear: "Gemm", models.Conv2d: "Conv", models.ConvTranspose2d: "ConvTranspose",
		models.MaxPool2d: "MaxPool", models.ReLU: "Relu", models.Sigmoid: "Sigmoid",
		models.Flatten: "Flatten", models.Unflatten: "Reshape",
	}
	for _, kind := range models.Kinds() {
		m := randomModel(t, kind, 12, 1)
		for _, part := range []string{Encoder, Decoder} {
			t.Run(kind+"/"+part, func(t *testing.T) {
				mp, err := Build(m, part, nil)
				if err != nil {
					t.Fatal(err)
				}
				if mp.IrVersion != IRVersion || len(mp.OpsetImport) != 1 || mp.OpsetImport[0].Version != Opset {
					t.Fatalf("IR %d, opsets %v: want IR %d, opset %d", mp.IrVersion, mp.OpsetImport, IRVersion, Opset)
				}
				layers := m.Arch.Encoder
				inName, inDims, outName, outDims := onnxmeta.ImageName, "N,1,28,28", onnxmeta.CodeName, "N,12"
				if part == Decoder {
					layers = m.Arch.Decoder
					inName, inDims, outName, outDims = outName, outDims, inName, inDims
				}
				g := mp.Graph
				mods := m.Arch.Modules(part)
				checkIO(t, "input", g.Input, inName, inDims)
				if part == Encoder && m.Arch.Variational {
					// The heads end the encoder, with an output each.
					if len(g.Output) != 2 {
						t.Fatalf("outputs %v, want mu and logvar", g.Output)
					}
					checkIO(t, "output", g.Output[:1], onnxmeta.MuName, outDims)
					checkIO(t, "output", g.Output[1:], onnxmeta.LogVarName, outDims)
					layers = append(slices.Clone(layers), m.Arch.Heads()...)
					mods = append(mods, models.HeadMu, models.HeadLogVar)
				} else {
					checkIO(t, "output", g.Output, outName, outDims)
				}
				if len(g.Node) != len(layers) {
					t.Fatalf("%d nodes for %d layers", len(g.Node), len(layers))
				}
				inits := make(map[string]*onnx.TensorProto)
				for _, x := range g.Initializer {
					inits[x.Name] = x
				}
				for i, l := range layers {
					n := g.Node[i]
					if n.Name != mods[i] {
						t.Errorf("node %d is named %s, want its module's name %s", i, n.Name, mods[i])
					}
					if n.OpType != ops[l.Op] {
						t.Errorf("node %d (%s) is %s, want %s for %s", i, n.Name, n.OpType, ops[l.Op], l.Op)
					}
					if !l.HasParams() {
						continue
					}
					for _, suffix := range []string{".weight", ".bias"} {
						name := mods[i] + suffix
						x, ok := inits[name]
						if !ok {
							t.Fatalf("initializer %s missing", name)
						}
						want := m.Params[name]
						if len(x.RawData) != 4*len(want) {
							t.Fatalf("%s has %d bytes, want %d", name, len(x.RawData), 4*len(want))
						}
						if got := math.Float32frombits(le32(x.RawData[len(x.RawData)-4:])); got != want[len(want)-1] {
							t.Errorf("%s last value %v, want %v", name, got, want[len(want)-1])
						}
					}
				}
			})
		}
	}
}

func le32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

func checkIO(t *testing.T, what string, vs []*onnx.ValueInfoProto, name, dims string) {
	t.Helper()
	if len(vs) != 1 || vs[0].Name != name {
		t.Fatalf("%s %v, want one named %q", what, vs, name)
	}
	tt := vs[0].Type.GetTensorType()
	if tt.ElemType != int32(onnx.TensorProto_FLOAT) {
		t.Errorf("%s type %d, want float", what, tt.ElemType)
	}
	var got []string
	for _, d := range tt.Shape.Dim {
		if p := d.GetDimParam(); p != "" {
			got = append(got, p)
		} else {
			got = append(got, strconv.FormatInt(d.GetDimValue(), 10))
		}
	}
	if strings.Join(got, ",") != dims {
		t.Errorf("%s dims %v, want %s", what, got, dims)
	}
}

func TestMetadataRoundTrip(t *testing.T) {
	for _, withStats := range []bool{false, true} {
		m := randomModel(t, "conv", 6, 2)
		var stats *latentstats.Stats
		if withStats {
			stats = randomStats(t, 6)
		}
		dir := t.TempDir()
		enc, dec, err := Export(m, stats, dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct{ path, part string }{{enc, Encoder}, {dec, Decoder}} {
			md, err := ReadMetadata(c.path)
			if err != nil {
				t.Fatal(err)
			}
			if md.Part != c.part || !md.Arch.Equal(m.Arch) || md.Dataset != "mnist" {
				t.Errorf("%s: part %q, arch %s, dataset %q", c.path, md.Part, md.Arch.JSON(), md.Dataset)
			}
			if md.Training.Step != 1876 || len(md.Training.TrainLoss) != 2 || md.Training.LR != 1e-3 {
				t.Errorf("%s: training summary %+v", c.path, md.Training)
			}
			if (md.Stats != nil) != withStats {
				t.Fatalf("%s: stats %v, want present = %v", c.path, md.Stats, withStats)
			}
			if withStats {
				a, _ := stats.JSON()
				b, _ := md.Stats.JSON()
				if !bytes.Equal(a, b) {
					t.Errorf("%s: stats changed in the round trip", c.path)
				}
			}
		}
	}
}

func TestExportIsDeterministicAndAtomic(t *testing.T) {
	m := randomModel(t, "classic", 3, 3)
	var a, b bytes.Buffer
	if err := WriteEncoder(&a, m, nil); err != nil {
		t.Fatal(err)
	}
	if err := WriteEncoder(&b, m, nil); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("two exports of the same model differ")
	}
	dir := t.TempDir()
	if _, _, err := Export(m, nil, dir); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != "decoder.onnx encoder.onnx" {
		t.Fatalf("export left %v in the folder, want only the two files", names)
	}
	onDisk, _ := os.ReadFile(filepath.Join(dir, onnxmeta.EncoderFile))
	if !bytes.Equal(onDisk, a.Bytes()) {
		t.Fatal("Export and WriteEncoder write different bytes")
	}
}

func TestExportErrors(t *testing.T) {
	good := func() *checkpoint.Model { return randomModel(t, "classic", 4, 4) }
	missing := good()
	delete(missing.Params, "encoder.2.weight")
	short := good()
	short.Params["decoder.0.bias"] = short.Params["decoder.0.bias"][:10]
	nan := good()
	nan.Params["encoder.0.weight"][5] = float32(math.NaN())
	badArch := good()
	badArch.Arch.Bottleneck = 5

	for _, tc := range []struct {
		name  string
		m     *checkpoint.Model
		stats *latentstats.Stats
		dir   string
		want  string
	}{
		{"nil model", nil, nil, "", "nil model"},
		{"missing parameter", missing, nil, "", "encoder.2.weight missing"},
		{"short parameter", short, nil, "", "decoder.0.bias has 10 values"},
		{"NaN parameter", nan, nil, "", "encoder.0.weight holds NaN"},
		{"inconsistent arch", badArch, nil, "", "encoder gives"},
		{"stats of the wrong size", good(), randomStats(t, 3), "", "latent stats of size 3"},
		{"missing folder", good(), nil, filepath.Join(t.TempDir(), "no", "such"), "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := tc.dir
			if dir == "" {
				dir = t.TempDir()
			}
			_, _, err := Export(tc.m, tc.stats, dir)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Export: error %v, want one containing %q", err, tc.want)
			}
			if tc.dir == "" {
				if entries, _ := os.ReadDir(dir); len(entries) != 0 {
					t.Errorf("a failed export left %d files behind", len(entries))
				}
			}
		})
	}
	if _, err := Build(good(), "middle", nil); err == nil {
		t.Error("Build of an unknown part: no error")
	}
}

func TestReadErrors(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.onnx")
	os.WriteFile(garbage, []byte("this is not a protobuf \xff\xff\xff"), 0o644)
	if _, err := ReadMetadata(garbage); err == nil || !strings.Contains(err.Error(), "not a valid ONNX model") {
		t.Errorf("ReadMetadata of garbage: %v", err)
	}
	if _, err := ReadMetadata(filepath.Join(dir, "missing.onnx")); err == nil {
		t.Error("ReadMetadata of a missing file: no error")
	}
	// A valid ONNX file without latent's metadata.
	foreign := filepath.Join(dir, "foreign.onnx")
	mp, err := Build(randomModel(t, "classic", 2, 5), Encoder, nil)
	if err != nil {
		t.Fatal(err)
	}
	mp.MetadataProps = nil
	b, _ := proto.Marshal(mp)
	os.WriteFile(foreign, b, 0o644)
	if _, err := ReadMetadata(foreign); !errors.Is(err, onnxmeta.ErrNotLatent) {
		t.Errorf("ReadMetadata of a file without metadata: %v, want onnxmeta.ErrNotLatent", err)
	}
}

func TestParseMetadataErrors(t *testing.T) {
	m := randomModel(t, "classic", 4, 6)
	md, err := NewMetadata(m, Encoder, randomStats(t, 4))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, key, value, want string
	}{
		{"other format", onnxmeta.KeyFormat, "latent-onnx/99", "another version"},
		{"bad part", onnxmeta.KeyPart, "middle", "part"},
		{"kind disagrees", onnxmeta.KeyKind, "conv", "kind"},
		{"bottleneck disagrees", onnxmeta.KeyBottleneck, "5", "bottleneck"},
		{"bad arch", onnxmeta.KeyArch, "{", "architecture"},
		{"bad training", onnxmeta.KeyTraining, "[", "training"},
		{"bad stats", onnxmeta.KeyStats, `{"dim":4}`, "latentstats"},
		{"stats of the wrong size", onnxmeta.KeyStats, string(mustJSON(t, randomStats(t, 3))), "latent stats of size 3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			props := md.Props()
			props[tc.key] = tc.value
			if _, err := onnxmeta.Parse(props); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseMetadata: error %v, want one containing %q", err, tc.want)
			}
		})
	}
	if _, err := onnxmeta.Parse(md.Props()); err != nil {
		t.Fatalf("ParseMetadata of good metadata: %v", err)
	}
}

func mustJSON(t *testing.T, s *latentstats.Stats) []byte {
	b, err := s.JSON()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestONNXChecker runs the reference checker of the onnx Python package
// (Debian's python3-onnx) with full_check on both files of both
// architectures.
func TestONNXChecker(t *testing.T) {
	const python = "/usr/bin/python3"
	if err := exec.Command(python, "-c", "import onnx").Run(); err != nil {
		t.Skipf("%s cannot import onnx (apt-get install python3-onnx): %v", python, err)
	}
	dir := t.TempDir()
	var paths []string
	for _, kind := range models.Kinds() {
		sub := filepath.Join(dir, kind)
		os.Mkdir(sub, 0o755)
		enc, dec, err := Export(randomModel(t, kind, 10, 8), randomStats(t, 10), sub)
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, enc, dec)
	}
	script := `
import sys, onnx
for p in sys.argv[1:]:
    m = onnx.load(p)
    onnx.checker.check_model(m, full_check=True)
    assert m.ir_version == 8, m.ir_version
    assert [(o.domain, o.version) for o in m.opset_import] == [("", 17)]
    print("ok", p)
`
	out, err := exec.Command(python, append([]string{"-c", script}, paths...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("onnx.checker failed: %v\n%s", err, out)
	}
	if got := strings.Count(string(out), "ok "); got != len(paths) {
		t.Fatalf("checker checked %d files, want %d:\n%s", got, len(paths), out)
	}
}
