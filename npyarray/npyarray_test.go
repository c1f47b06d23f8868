package npyarray

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"codeberg.org/sbinet/npyio"
)

// npyFile returns a .npy file with the given version, header dictionary
// (padded and ended with a newline) and data.
func npyFile(major byte, dict string, data []byte) []byte {
	b := []byte(magic)
	b = append(b, major, 0)
	hdr := dict + "\n"
	if major == 1 {
		b = binary.LittleEndian.AppendUint16(b, uint16(len(hdr)))
	} else {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(hdr)))
	}
	b = append(b, hdr...)
	return append(b, data...)
}

func float32Bytes(order binary.AppendByteOrder, v ...float32) []byte {
	var b []byte
	for _, x := range v {
		b = order.AppendUint32(b, math.Float32bits(x))
	}
	return b
}

func float64Bytes(order binary.AppendByteOrder, v ...float64) []byte {
	var b []byte
	for _, x := range v {
		b = order.AppendUint64(b, math.Float64bits(x))
	}
	return b
}

func TestWriteHeader(t *testing.T) {
	for _, shape := range [][]int{nil, {0}, {7}, {3, 10}, {2, 1, 28, 28}, {100000, 4096}} {
		var buf bytes.Buffer
		if err := WriteHeader(&buf, Float32, shape); err != nil {
			t.Fatal(err)
		}
		if buf.Len()%64 != 0 || buf.Bytes()[buf.Len()-1] != '\n' {
			t.Errorf("shape %v: header of %d bytes, want a multiple of 64 ending in a newline", shape, buf.Len())
		}
		n, _ := count(shape)
		if n > 1000 {
			continue
		}
		WriteFloat32s(&buf, make([]float32, n))
		v, got, err := Read(&buf)
		if err != nil {
			t.Fatal(err)
		}
		if len(v) != n || len(got) != len(shape) {
			t.Errorf("shape %v read back as %v with %d values", shape, got, len(v))
		}
	}
	var buf bytes.Buffer
	if err := WriteHeader(&buf, "<i8", []int{2}); err == nil {
		t.Error("wrote a header of dtype <i8")
	}
	if err := WriteHeader(&buf, Float32, []int{2, -1}); err == nil {
		t.Error("wrote a header with a negative dimension")
	}
	if err := Write(&buf, make([]float32, 5), []int{2, 3}); err == nil || !strings.Contains(err.Error(), "holds 6 values, have 5") {
		t.Errorf("Write of 5 values as [2 3]: %v", err)
	}
}

// TestWriteHeaderSize checks that a header written for a larger count can
// be rewritten in place for a smaller one, and that a header that does not
// fit is refused.
func TestWriteHeaderSize(t *testing.T) {
	var big, small bytes.Buffer
	if err := WriteHeader(&big, Float32, []int{1000000, 16}); err != nil {
		t.Fatal(err)
	}
	if err := WriteHeaderSize(&small, Float32, []int{7, 16}, big.Len()); err != nil {
		t.Fatal(err)
	}
	if small.Len() != big.Len() {
		t.Fatalf("rewritten header of %d bytes, want %d", small.Len(), big.Len())
	}
	WriteFloat32s(&small, make([]float32, 7*16))
	if v, shape, err := Read(&small); err != nil || !slices.Equal(shape, []int{7, 16}) || len(v) != 7*16 {
		t.Fatalf("read back %v, %d values, %v", shape, len(v), err)
	}
	for _, size := range []int{64, 100} {
		if err := WriteHeaderSize(io.Discard, Float32, []int{1000000, 16}, size); err == nil {
			t.Errorf("wrote a header into %d bytes", size)
		}
	}
}

// TestReaderChunks reads an array a few values at a time, across the
// reader's own chunks, and checks the values, the end, and data after it.
func TestReaderChunks(t *testing.T) {
	want := make([]float32, 3*chunk/4+5)
	for i := range want {
		want[i] = float32(i % 1000)
	}
	var buf bytes.Buffer
	if err := Write(&buf, want, []int{len(want)}); err != nil {
		t.Fatal(err)
	}
	file := buf.Bytes()
	r, err := NewReader(bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	if r.Len() != len(want) || r.Uint8() || !slices.Equal(r.Shape(), []int{len(want)}) {
		t.Fatalf("Len %d, Uint8 %v, Shape %v", r.Len(), r.Uint8(), r.Shape())
	}
	var got []float32
	dst := make([]float32, 997)
	for {
		k, err := r.Read(dst)
		got = append(got, dst[:k]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("read %d values, want %d, or other values", len(got), len(want))
	}
	r, _ = NewReader(bytes.NewReader(append(slices.Clone(file), 0)))
	for err = nil; err == nil; _, err = r.Read(dst) {
	}
	if !errors.Is(err, ErrFormat) {
		t.Errorf("a byte after the data: %v, want ErrFormat", err)
	}
	r, _ = NewReader(bytes.NewReader(file[:len(file)-3]))
	for err = nil; err == nil; _, err = r.Read(dst) {
	}
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated data: %v, want io.ErrUnexpectedEOF", err)
	}
}

// TestNpyioReads checks that npyio, which other code of latent uses, reads
// what Write writes.
func TestNpyioReads(t *testing.T) {
	want := []float32{0, -1.5, float32(math.Inf(1)), 3e38, 1e-45, 7}
	var buf bytes.Buffer
	if err := Write(&buf, want, []int{2, 3}); err != nil {
		t.Fatal(err)
	}
	r, err := npyio.NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	var got []float32
	if err := r.Read(&got); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.Header.Descr.Shape, []int{2, 3}) || !slices.Equal(got, want) {
		t.Errorf("npyio read shape %v values %v, want [2 3] %v", r.Header.Descr.Shape, got, want)
	}
}

func TestRead(t *testing.T) {
	le, be := binary.LittleEndian, binary.BigEndian
	for _, tc := range []struct {
		name  string
		file  []byte
		shape []int
		want  []float32
	}{
		{"f4", npyFile(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }", float32Bytes(le, 1, 2, 3, 4)), []int{2, 2}, []float32{1, 2, 3, 4}},
		{"f4 big-endian", npyFile(1, "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", float32Bytes(be, 1, -2)), []int{2}, []float32{1, -2}},
		{"f8", npyFile(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }", float64Bytes(le, 0.5, 1e300, -0.25)), []int{3}, []float32{0.5, float32(math.Inf(1)), -0.25}},
		{"f8 big-endian", npyFile(1, "{'descr': '>f8', 'fortran_order': False, 'shape': (1, 1), }", float64Bytes(be, 9)), []int{1, 1}, []float32{9}},
		{"version 2", npyFile(2, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", float32Bytes(le, 5)), []int{1}, []float32{5}},
		{"version 3", npyFile(3, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", float32Bytes(le, 5)), []int{1}, []float32{5}},
		{"keys in another order, double quotes", npyFile(1, `{"shape": (1, 2), "fortran_order": False, "descr": "<f4"}`, float32Bytes(le, 5, 6)), []int{1, 2}, []float32{5, 6}},
		{"0-d", npyFile(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (), }", float32Bytes(le, 8)), []int{}, []float32{8}},
		{"empty", npyFile(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 10), }", nil), []int{0, 10}, []float32{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, shape, err := Read(bytes.NewReader(tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(shape, tc.shape) || !slices.Equal(got, tc.want) {
				t.Errorf("got shape %v values %v, want %v %v", shape, got, tc.shape, tc.want)
			}
		})
	}
}

// TestReadErrors feeds Read damaged files. npyio v0.14.0 panics on "no
// newline", "no closing brace" and "empty shape text" (and on a valid header
// with the keys in another order, see TestRead), and accepts "negative
// dimension" and "huge shape" without an error.
func TestReadErrors(t *testing.T) {
	le := binary.LittleEndian
	good := npyFile(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", float32Bytes(le, 1, 2))
	noNewline := append([]byte(magic+"\x01\x00\x05\x00"), "{'a':"...)
	for _, tc := range []struct {
		name   string
		file   []byte
		want   string
		format bool // the error wraps ErrFormat
	}{
		{"no newline", noNewline, "newline", true},
		{"no closing brace after keys out of order", npyFile(1, "{'shape': (2,), 'fortran_order': False, 'descr': '<f4', ", nil), "key: want a quoted string", true},
		{"negative dimension", npyFile(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }", nil), "non-negative", true},
		{"no closing brace", npyFile(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,)", nil), "no ',' or '}'", true},
		{"empty shape text", npyFile(1, "{'descr': '<f4', 'fortran_order': False, 'shape': , }", nil), "want a tuple", true},
		{"huge shape", npyFile(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4000000000, 4000000000), }", nil), "too large", true},
		{"dimension overflows int", npyFile(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }", nil), "out of range", true},
		{"empty", nil, "magic", true},
		{"text", []byte("hello"), "magic", true},
		{"other magic", []byte("\x93NUMPX\x01\x00"), "magic", true},
		{"version 4", []byte(magic + "\x04\x00"), "version 4.0", true},
		{"no header length", []byte(magic + "\x01\x00\x05"), "header length", true},
		{"header too long", []byte(magic + "\x02\x00\xff\xff\xff\x7f"), "at most", true},
		{"header truncated", good[:30], "truncated", true},
		{"data truncated", good[:len(good)-1], "ends after 7", true},
		{"trailing byte", append(append([]byte(nil), good...), 0), "bytes after", true},
		{"(n) is not a tuple", npyFile(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2), }", float32Bytes(le, 1, 2)), "not a tuple", true},
		{"missing key", npyFile(1, "{'descr': '<f4', 'shape': (2,), }", float32Bytes(le, 1, 2)), "want the keys", true},
		{"key twice", npyFile(1, "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", nil), "twice", true},
		{"unknown key", npyFile(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}", nil), "unknown key", true},
		{"bad bool", npyFile(1, "{'descr': '<f4', 'fortran_order': 0, 'shape': (2,), }", nil), "True or False", true},
		{"text after the dictionary", npyFile(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), } x", nil), "after the dictionary", true},
		{"fortran order", npyFile(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }", float32Bytes(le, 1, 2)), "Fortran", false},
		{"int64", npyFile(1, "{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }", make([]byte, 16)), "dtype <i8", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Read(bytes.NewReader(tc.file))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got error %v, want one containing %q", err, tc.want)
			}
			if errors.Is(err, ErrFormat) != tc.format {
				t.Errorf("errors.Is(%v, ErrFormat) = %v, want %v", err, !tc.format, tc.format)
			}
		})
	}
	if _, _, err := Read(bytes.NewReader(good[:len(good)-3])); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated data: %v, want io.ErrUnexpectedEOF", err)
	}
}

// TestNumPy checks that NumPy reads what Write writes and that Read reads
// what numpy.save writes, when python3 with numpy is installed.
func TestNumPy(t *testing.T) {
	const python = "/usr/bin/python3"
	if err := exec.Command(python, "-c", "import numpy").Run(); err != nil {
		t.Skipf("%s cannot import numpy: %v", python, err)
	}
	dir := t.TempDir()
	ours := filepath.Join(dir, "ours.npy")
	var buf bytes.Buffer
	if err := Write(&buf, []float32{1, 2, 3, 4, 5, 6}, []int{3, 2}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ours, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	script := `
import sys, numpy as np
a = np.load(sys.argv[1])
assert a.dtype == np.float32 and a.shape == (3, 2) and a.tolist() == [[1, 2], [3, 4], [5, 6]], a
np.save(sys.argv[2], np.arange(6, dtype=np.float32).reshape(2, 3))
np.save(sys.argv[3], np.array([0.5, -2], dtype='>f8'))
np.save(sys.argv[4], np.float32(7))
`
	theirs := []string{filepath.Join(dir, "f4.npy"), filepath.Join(dir, "f8be.npy"), filepath.Join(dir, "scalar.npy")}
	if out, err := exec.Command(python, append([]string{"-c", script, ours}, theirs...)...).CombinedOutput(); err != nil {
		t.Fatalf("numpy: %v\n%s", err, out)
	}
	for i, want := range []struct {
		shape []int
		data  []float32
	}{{[]int{2, 3}, []float32{0, 1, 2, 3, 4, 5}}, {[]int{2}, []float32{0.5, -2}}, {[]int{}, []float32{7}}} {
		data, shape, err := ReadFile(theirs[i])
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(shape, want.shape) || !slices.Equal(data, want.data) {
			t.Errorf("%s: shape %v values %v, want %v %v", theirs[i], shape, data, want.shape, want.data)
		}
	}
	if _, _, err := ReadFile(filepath.Join(dir, "missing.npy")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

// checkArray checks the promises of Read for a result without error.
func checkArray(t *testing.T, data []float32, shape []int) {
	t.Helper()
	n := 1
	for _, d := range shape {
		if d < 0 {
			t.Fatalf("shape %v has a negative dimension", shape)
		}
		n *= d
	}
	if len(shape) > MaxDims || n != len(data) {
		t.Fatalf("shape %v with %d values", shape, len(data))
	}
}

// FuzzRead checks that Read never panics, that what it accepts is a
// well-formed array (dimensions >= 0, as many values as they say), and that
// writing that array and reading it back gives the same shape and bits.
func FuzzRead(f *testing.F) {
	le := binary.LittleEndian
	var buf bytes.Buffer
	Write(&buf, []float32{1, 2, 3, 4, 5, 6}, []int{2, 3})
	f.Add(buf.Bytes())
	f.Add(npyFile(2, `{"shape": (1, 2), "fortran_order": False, "descr": ">f8"}`, float64Bytes(le, 5, 6)))
	f.Add([]byte(magic + "\x01\x00\x05\x00{'a':"))
	f.Fuzz(func(t *testing.T, b []byte) {
		data, shape, err := Read(bytes.NewReader(b))
		if err != nil {
			if data != nil || shape != nil {
				t.Fatalf("error %v with shape %v and %d values", err, shape, len(data))
			}
			return
		}
		checkArray(t, data, shape)
		var out bytes.Buffer
		if err := Write(&out, data, shape); err != nil {
			t.Fatalf("Write of what Read accepted: %v", err)
		}
		data2, shape2, err := Read(&out)
		if err != nil {
			t.Fatalf("Read of what Write wrote: %v", err)
		}
		if !slices.Equal(shape, shape2) || !sameBits(data, data2) {
			t.Fatalf("round trip: shape %v -> %v", shape, shape2)
		}
	})
}

// FuzzRoundTrip checks that Write then Read gives back the same shape and
// the same bits, NaN payloads and negative zeros included, and that npyio
// reads the same values. dims gives up to 4 dimensions of 0 to 7, values
// the bits of the values (repeated as needed).
func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte{2, 3}, float32Bytes(binary.LittleEndian, 1, -0, float32(math.NaN())))
	f.Add([]byte{}, []byte{0, 0, 0x80, 0x7f})
	f.Add([]byte{1, 0, 4}, []byte{})
	f.Fuzz(func(t *testing.T, dims, values []byte) {
		if len(dims) > 4 {
			dims = dims[:4]
		}
		shape := make([]int, len(dims))
		n := 1
		for i, d := range dims {
			shape[i] = int(d % 8)
			n *= shape[i]
		}
		data := make([]float32, n)
		for i := range data {
			if len(values) >= 4 {
				j := 4 * (i % (len(values) / 4))
				data[i] = math.Float32frombits(binary.LittleEndian.Uint32(values[j:]))
			}
		}
		var buf bytes.Buffer
		if err := Write(&buf, data, shape); err != nil {
			t.Fatal(err)
		}
		if (buf.Len()-4*n)%64 != 0 {
			t.Fatalf("header of %d bytes, want a multiple of 64", buf.Len()-4*n)
		}
		file := slices.Clone(buf.Bytes())
		got, gotShape, err := Read(&buf)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(gotShape, shape) || !sameBits(got, data) {
			t.Fatalf("shape %v read back as %v", shape, gotShape)
		}
		r, err := npyio.NewReader(bytes.NewReader(file))
		if err != nil {
			t.Fatalf("npyio: %v", err)
		}
		var v []float32
		if err := r.Read(&v); err != nil {
			t.Fatalf("npyio: %v", err)
		}
		if !slices.Equal(r.Header.Descr.Shape, shape) && !(len(shape) == 0 && r.Header.Descr.Shape == nil) {
			t.Fatalf("npyio read shape %v, want %v", r.Header.Descr.Shape, shape)
		}
		if !sameBits(v, data) {
			t.Fatalf("npyio read other values")
		}
	})
}

func sameBits(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}
