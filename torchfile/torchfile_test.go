package torchfile

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// The fixtures are written by testdata/make_fixtures.py.
const (
	fxStateDict = "statedict.pth" // Sequential(Linear(3,2), ReLU(), Linear(2,4)).state_dict()
	fxProto4    = "proto4.pth"    // the same with pickle_protocol=4
	fxStrided   = "strided.pth"   // a transpose, a strided slice, a 0-d tensor
	fxFloat64   = "float64.pth"   // float32, float64, int64, float16 tensors
	fxShared    = "shared.pth"    // two views of one storage, in a plain dict
	fxModel     = "model.pth"     // torch.save(model): the whole model
	fxLegacy    = "legacy.pth"    // the pre-1.6 format
)

func init() {
	// A panic that Read recovers from must come from the unpickler, never
	// from this package's code: crash the test with the stack if it does.
	onPanic = func(stack []byte) {
		if fn := panicking(stack); strings.Contains(fn, "latent-ai/latent/torchfile") {
			panic("torchfile code panicked in " + fn + ":\n" + string(stack))
		}
	}
}

// panicking returns the function that panicked in a debug.Stack output.
func panicking(stack []byte) string {
	lines := strings.Split(string(stack), "\n")
	for i, l := range lines {
		if !strings.HasPrefix(l, "panic(") {
			continue
		}
		for _, f := range lines[i+1:] {
			if f != "" && !strings.HasPrefix(f, "\t") && !strings.HasPrefix(f, "runtime.") {
				return f
			}
		}
	}
	return ""
}

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rezip rewrites the zip data entry by entry through edit, which returns an
// entry's new content or nil to drop it, then appends extra entries
// (name, content pairs). Entries are stored, not compressed.
func rezip(t testing.TB, data []byte, edit func(name string, b []byte) []byte, extra ...string) []byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	var contents [][]byte
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if _, err := buf.ReadFrom(rc); err != nil {
			t.Fatal(err)
		}
		rc.Close()
		b := buf.Bytes()
		if edit != nil {
			b = edit(f.Name, b)
		}
		if b != nil {
			names, contents = append(names, f.Name), append(contents, b)
		}
	}
	for i := 0; i+1 < len(extra); i += 2 {
		names, contents = append(names, extra[i]), append(contents, []byte(extra[i+1]))
	}
	return makeZip(t, names, contents)
}

func makeZip(t testing.TB, names []string, contents [][]byte) []byte {
	t.Helper()
	var out bytes.Buffer
	zw := zip.NewWriter(&out)
	for i, name := range names {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(contents[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// spec is one tensor of a hand-written state dict pickle.
type spec struct {
	name, class, key string
	numel, offset    int64
	size, stride     []int64
}

// pickleInt writes n as BININT or, when it does not fit, LONG1.
func pickleInt(b *bytes.Buffer, n int64) {
	if n == int64(int32(n)) {
		b.WriteByte('J')
		binary.Write(b, binary.LittleEndian, int32(n))
		return
	}
	b.WriteString("\x8a\x08")
	binary.Write(b, binary.LittleEndian, n)
}

func pickleStr(b *bytes.Buffer, s string) {
	b.WriteByte('X')
	binary.Write(b, binary.LittleEndian, uint32(len(s)))
	b.WriteString(s)
}

// statePickle writes a protocol 2 pickle of an OrderedDict of the tensors
// in specs, as torch.save does (less the memo and the _metadata).
func statePickle(specs ...spec) []byte {
	var b bytes.Buffer
	b.WriteString("\x80\x02ccollections\nOrderedDict\n)R(")
	for _, s := range specs {
		pickleStr(&b, s.name)
		b.WriteString("ctorch._utils\n_rebuild_tensor_v2\n((")
		pickleStr(&b, "storage")
		b.WriteString("ctorch\n" + s.class + "\n")
		pickleStr(&b, s.key)
		pickleStr(&b, "cpu")
		pickleInt(&b, s.numel)
		b.WriteString("tQ")
		pickleInt(&b, s.offset)
		for _, tuple := range [][]int64{s.size, s.stride} {
			b.WriteByte('(')
			for _, n := range tuple {
				pickleInt(&b, n)
			}
			b.WriteByte('t')
		}
		b.WriteString("\x89)tR")
	}
	b.WriteString("u.")
	return b.Bytes()
}

// archiveOf returns a checkpoint of the pickle pkl and the storages given
// as key, content pairs.
func archiveOf(t testing.TB, pkl []byte, storages ...string) []byte {
	t.Helper()
	names := []string{"archive/data.pkl"}
	contents := [][]byte{pkl}
	for i := 0; i+1 < len(storages); i += 2 {
		names, contents = append(names, "archive/data/"+storages[i]), append(contents, []byte(storages[i+1]))
	}
	names, contents = append(names, "archive/version"), append(contents, []byte("3\n"))
	return makeZip(t, names, contents)
}

// float32s returns the little-endian bytes of vs.
func float32s(vs ...float32) string {
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, vs)
	return b.String()
}

// seq returns arange(n) * 0.25 + base, as the fixtures hold.
func seq(n int, base float32) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(i)*0.25 + base
	}
	return out
}

func TestRead(t *testing.T) {
	sequential := []Tensor{
		{"0.weight", "float32", []int{2, 3}, seq(6, 0)},
		{"0.bias", "float32", []int{2}, seq(2, 10)},
		{"2.weight", "float32", []int{4, 2}, seq(8, 20)},
		{"2.bias", "float32", []int{4}, seq(4, 30)},
	}
	bigEndian := rezip(t, fixture(t, fxStateDict), func(name string, b []byte) []byte {
		if strings.Contains(name, "/data/") {
			for i := 0; i+4 <= len(b); i += 4 {
				b[i], b[i+1], b[i+2], b[i+3] = b[i+3], b[i+2], b[i+1], b[i]
			}
		}
		return b
	}, "statedict/byteorder", "big")
	cases := []struct {
		name string
		data []byte
		want []Tensor
	}{
		{"state dict", fixture(t, fxStateDict), sequential},
		{"pickle protocol 4", fixture(t, fxProto4), sequential},
		{"big-endian storages", bigEndian, sequential},
		{"little-endian byteorder entry", rezip(t, fixture(t, fxStateDict), nil, "statedict/byteorder", "little"), sequential},
		{"strided views", fixture(t, fxStrided), []Tensor{
			{"transposed", "float32", []int{3, 2}, []float32{0, 3, 1, 4, 2, 5}},
			{"sliced", "float32", []int{3}, []float32{2, 4, 6}},
			{"scalar", "float32", []int{}, []float32{7.5}},
		}},
		{"dtypes", fixture(t, fxFloat64), []Tensor{
			{"w", "float32", []int{2}, []float32{1.5, -2}},
			{"d", "float64", []int{3}, nil},
			{"n", "int64", []int{4}, nil},
			{"h", "float16", []int{2}, nil},
		}},
		{"shared storage", fixture(t, fxShared), []Tensor{
			{"all", "float32", []int{2, 4}, []float32{0, 1, 2, 3, 4, 5, 6, 7}},
			{"tail", "float32", []int{4}, []float32{4, 5, 6, 7}},
		}},
		{"empty state dict", archiveOf(t, statePickle()), []Tensor{}},
		{"zero-size tensor and stride-0 view", archiveOf(t, statePickle(
			spec{"empty", "FloatStorage", "0", 0, 0, []int64{0, 3}, []int64{3, 1}},
			spec{"expanded", "FloatStorage", "1", 2, 0, []int64{3, 2}, []int64{0, 1}},
			spec{"huge empty", "FloatStorage", "0", 0, 5, []int64{1 << 40, 0}, []int64{7, 7}},
		), "0", "", "1", float32s(1, 2)), []Tensor{
			{"empty", "float32", []int{0, 3}, []float32{}},
			{"expanded", "float32", []int{3, 2}, []float32{1, 2, 1, 2, 1, 2}},
			{"huge empty", "float32", []int{1 << 40, 0}, []float32{}},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Read(c.data)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got %+v\nwant %+v", got, c.want)
			}
		})
	}
}

// TestReadOwnsData checks that tensors sharing a storage get separate Data.
func TestReadOwnsData(t *testing.T) {
	ts, err := Read(fixture(t, fxShared))
	if err != nil {
		t.Fatal(err)
	}
	ts[0].Data[4] = -1
	if ts[1].Data[0] != 4 {
		t.Errorf("writing tensor %s changed tensor %s: %v", ts[0].Name, ts[1].Name, ts[1].Data)
	}
}

func TestReadErrors(t *testing.T) {
	sd := fixture(t, fxStateDict)
	// flip inverts one byte of the content of the first entry whose name
	// ends with suffix.
	flip := func(suffix string) []byte {
		zr, err := zip.NewReader(bytes.NewReader(sd), int64(len(sd)))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range zr.File {
			if strings.HasSuffix(f.Name, suffix) {
				off, err := f.DataOffset()
				if err != nil {
					t.Fatal(err)
				}
				b := bytes.Clone(sd)
				b[off+int64(f.UncompressedSize64)/2] ^= 0xff
				return b
			}
		}
		t.Fatalf("no entry %s", suffix)
		return nil
	}
	w := spec{"w", "FloatStorage", "0", 6, 0, []int64{2, 3}, []int64{3, 1}}
	six := float32s(0, 1, 2, 3, 4, 5)
	with := func(s spec, edit func(*spec)) spec { edit(&s); return s }
	marks := append([]byte("\x80\x02"), bytes.Repeat([]byte("("), 1<<20)...)
	cases := []struct {
		name string
		data []byte
		is   error
		want string // in the message
	}{
		{"nil", nil, ErrFormat, "input is empty"},
		{"empty", []byte{}, ErrFormat, "input is empty"},
		{"not a zip", []byte("hello, world"), ErrFormat, "no zip header"},
		{"truncated", sd[:len(sd)/2], ErrFormat, "truncated or corrupt"},
		{"truncated end", sd[:len(sd)-1], ErrFormat, "truncated or corrupt"},
		{"corrupt data.pkl", flip("data.pkl"), ErrFormat, "checksum"},
		{"corrupt storage", flip("data/0"), ErrFormat, "checksum"},
		{"whole model", fixture(t, fxModel), ErrNotStateDict, "torch.nn.modules.container.Sequential"},
		{"legacy format", fixture(t, fxLegacy), ErrNotStateDict, "legacy"},
		{"no data.pkl", rezip(t, sd, func(n string, b []byte) []byte {
			if strings.HasSuffix(n, "data.pkl") {
				return nil
			}
			return b
		}), ErrFormat, "no <prefix>/data.pkl"},
		{"TorchScript", rezip(t, sd, nil, "statedict/constants.pkl", "x"), ErrNotStateDict, "TorchScript"},
		{"bad byteorder", rezip(t, sd, nil, "statedict/byteorder", "middle"), ErrFormat, "byteorder"},
		{"missing storage", rezip(t, sd, func(n string, b []byte) []byte {
			if strings.HasSuffix(n, "data/1") {
				return nil
			}
			return b
		}), ErrFormat, `"statedict/data/1" is missing`},
		{"short storage", rezip(t, sd, func(n string, b []byte) []byte {
			if strings.HasSuffix(n, "data/0") {
				return b[:8]
			}
			return b
		}), ErrFormat, "holds 8 bytes"},
		{"view past the storage", archiveOf(t, statePickle(with(w, func(s *spec) { s.offset = 1 })), "0", six), ErrFormat, "past the end"},
		{"stride past the storage", archiveOf(t, statePickle(with(w, func(s *spec) { s.stride = []int64{4, 1} })), "0", six), ErrFormat, "past the end"},
		{"huge stride", archiveOf(t, statePickle(with(w, func(s *spec) { s.stride = []int64{1 << 62, 1} })), "0", six), ErrFormat, "stride"},
		{"negative stride", archiveOf(t, statePickle(with(w, func(s *spec) { s.stride = []int64{-3, 1} })), "0", six), ErrFormat, "stride"},
		{"huge storage", archiveOf(t, statePickle(with(w, func(s *spec) { s.numel = 1 << 40 })), "0", six), ErrFormat, "holds 24 bytes"},
		{"huge expanded view", archiveOf(t, statePickle(with(w, func(s *spec) { s.size, s.stride = []int64{1 << 40, 3}, []int64{0, 1} })), "0", six), ErrFormat, "MaxSize"},
		{"unknown storage type", archiveOf(t, statePickle(with(w, func(s *spec) { s.class = "QInt8Storage" })), "0", six), ErrNotStateDict, "torch.QInt8Storage"},
		{"no STOP", archiveOf(t, bytes.TrimSuffix(statePickle(w), []byte("."))), ErrFormat, "without a STOP"},
		{"cut GLOBAL", archiveOf(t, statePickle(w)[:40]), ErrFormat, "GLOBAL without a newline"},
		{"non-tensor value", archiveOf(t, []byte("\x80\x02}(X\x01\x00\x00\x00aK\x01u.")), ErrNotStateDict, `entry "a" is the int 1`},
		{"checkpoint of parts", archiveOf(t, []byte("\x80\x02}(X\x05\x00\x00\x00modelccollections\nOrderedDict\n)Ru.")), ErrNotStateDict, `entry "model" is an OrderedDict`},
		{"self-referential list", archiveOf(t, []byte("\x80\x02}(X\x01\x00\x00\x00a]q\x00h\x00au.")), ErrNotStateDict, "a list of 1 items"},
		{"non-string key", archiveOf(t, []byte("\x80\x02}(K\x01K\x01u.")), ErrNotStateDict, "the int 1"},
		{"list at the top", archiveOf(t, []byte("\x80\x02].")), ErrNotStateDict, "a list of 0 items"},
		{"single tensor", archiveOf(t, append(bytes.TrimSuffix(bytes.Replace(statePickle(w), []byte("ccollections\nOrderedDict\n)R(X\x01\x00\x00\x00w"), nil, 1), []byte("u.")), '.'), "0", six), ErrNotStateDict, "single tensor"},
		{"GLOBAL os.system", archiveOf(t, []byte("\x80\x02cos\nsystem\nX\x02\x00\x00\x00ls\x85R.")), ErrNotStateDict, "os.system"},
		{"STACK_GLOBAL builtins.eval", archiveOf(t, []byte("\x80\x04\x8c\x08builtins\x8c\x04eval\x93X\x01\x00\x00\x001\x85R.")), ErrNotStateDict, "builtins.eval"},
		{"INST opcode", archiveOf(t, []byte("\x80\x02(ios\nsystem\n.")), ErrFormat, "opcode 0x69"},
		{"opcode 0xff", archiveOf(t, []byte("\x80\x02\xff.")), ErrFormat, "opcode 0xff"},
		{"huge string", archiveOf(t, []byte("\x80\x02X\xf0\xff\xff\xff.")), ErrFormat, "string of 4294967280 bytes"},
		{"string past the end", archiveOf(t, []byte("\x80\x02X\x10\x00\x00\x00ab.")), ErrFormat, "needs 16 bytes"},
		{"huge frame", archiveOf(t, []byte("\x80\x04\x95\xff\xff\xff\xff\xff\xff\xff\x7f.")), ErrFormat, "frame of"},
		{"LONG1 of no bytes", archiveOf(t, []byte("\x80\x02\x8a\x00.")), ErrFormat, "LONG1"},
		{"odd SETITEMS", archiveOf(t, []byte("\x80\x02}(K\x01u.")), ErrFormat, "malformed"},
		{"STACK_GLOBAL of a tuple", archiveOf(t, []byte("\x80\x04)\x8c\x01a\x93.")), ErrFormat, "not constant strings"},
		{"STACK_GLOBAL of memoized builtins.list", archiveOf(t, []byte("\x80\x04\x8c\x08builtins\x94\x8c\x04list\x94h\x00h\x01\x93)R.")), ErrNotStateDict, "builtins.list"},
		{"stack underflow", archiveOf(t, []byte("\x80\x02(R.")), ErrFormat, "too few values"},
		{"string copies bomb", archiveOf(t, append(append([]byte("\x80\x02X\x00\x10\x00\x00"), append(bytes.Repeat([]byte("a"), 4096), "q\x00("...)...), bytes.Repeat([]byte("h\x00"), 70000)...)), ErrFormat, "bytes of memory"},
		{"mark bomb", archiveOf(t, marks), ErrFormat, "bytes of memory"},
		{"BUILD bomb", archiveOf(t, append([]byte("\x80\x02}q\x00"), append(bytes.Repeat([]byte("h\x00b"), 100), '.')...)), ErrFormat, "BUILD"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Read(c.data)
			if err == nil {
				t.Fatalf("no error, got %d tensors", len(got))
			}
			if got != nil {
				t.Errorf("got tensors %v with the error", got)
			}
			msg := err.Error()
			if !errors.Is(err, c.is) || !strings.Contains(msg, c.want) || strings.Contains(msg, "\n") {
				t.Errorf("error %q: want one line wrapping %q and saying %q", msg, c.is, c.want)
			}
		})
	}
}

// TestReadPrefixes checks that every prefix of the fixtures is refused.
func TestReadPrefixes(t *testing.T) {
	for _, name := range []string{fxStateDict, fxStrided, fxShared, fxFloat64, fxProto4} {
		data := fixture(t, name)
		for n := range len(data) {
			if _, err := Read(data[:n]); err == nil {
				t.Errorf("%s: the first %d of %d bytes: no error", name, n, len(data))
			}
		}
	}
}

// TestReadFlips inverts each byte of a fixture in turn: Read may or may
// not notice (a byte of a zip header field it does not use), but must not
// panic, and must return either tensors or a wrapped error.
func TestReadFlips(t *testing.T) {
	for _, name := range []string{fxStateDict, fxProto4} {
		data := fixture(t, name)
		for i := range data {
			b := bytes.Clone(data)
			b[i] ^= 0xff
			ts, err := Read(b)
			if err != nil && (ts != nil || !errors.Is(err, ErrFormat) && !errors.Is(err, ErrNotStateDict)) {
				t.Errorf("%s, byte %d: %v, %v", name, i, ts, err)
			}
		}
	}
}

func TestSniff(t *testing.T) {
	sd := fixture(t, fxStateDict)
	cases := []struct {
		name string
		data []byte
		want bool
	}{
		{"state dict", sd, true},
		{"whole model", fixture(t, fxModel), true},
		{"first 64 bytes", sd[:64], true},
		{"first 30 bytes", sd[:30], false},
		{"data.pkl not first", rezip(t, sd, func(n string, b []byte) []byte {
			if strings.HasSuffix(n, "data.pkl") {
				return nil
			}
			return b
		}, "statedict/data.pkl", "x"), true},
		{"zip without data.pkl", rezip(t, sd, func(n string, b []byte) []byte {
			if strings.HasSuffix(n, "data.pkl") {
				return nil
			}
			return b
		}), false},
		{"legacy", fixture(t, fxLegacy), false},
		{"empty", nil, false},
		{"npy", []byte("\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }"), false},
	}
	for _, c := range cases {
		if got := Sniff(c.data); got != c.want {
			t.Errorf("%s: Sniff = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.pth")
	if err := os.WriteFile(big, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(big, MaxSize+1); err != nil { // sparse
		t.Fatal(err)
	}
	cases := []struct {
		path, want string
	}{
		{filepath.Join(dir, "missing.pth"), "no such file"},
		{big, "over the limit"},
		{filepath.Join("testdata", fxModel), "testdata/model.pth"},
	}
	for _, c := range cases {
		_, err := Load(c.path)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Load(%s): error %v, want one saying %q", c.path, err, c.want)
		}
	}
	if ts, err := Load(filepath.Join("testdata", fxStateDict)); err != nil || len(ts) != 4 {
		t.Errorf("Load(%s): %d tensors, %v", fxStateDict, len(ts), err)
	}
}
