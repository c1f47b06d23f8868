// Package npyarray reads and writes NumPy .npy files of float32 arrays, the
// format in which latent stores codes ([N, bottleneck]) and images
// ([N, C, H, W]).
//
// Files are written in format version 1.0, C order, little-endian, with a
// header padded to a multiple of 64 bytes, as numpy.save writes them, so that
// numpy.load reads them and memory maps them.
//
// Read parses the header itself rather than with codeberg.org/sbinet/npyio
// (v0.14.0), whose reader panics on some damaged headers (no newline, no
// closing brace, an empty shape) and on valid ones with the keys in another
// order, returns no error for a negative or overflowing dimension, and
// allocates whatever size a header claims before reading any data.
package npyarray

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
)

// DType is a NumPy array-protocol type string, as it appears in the
// header's 'descr' field.
type DType string

// The element types that WriteHeader writes.
const (
	Float32 DType = "<f4" // little-endian float32
	Uint8   DType = "|u1" // uint8, as latent writes labels
)

// Limits of Read. MaxHeader is larger than any header numpy.save writes
// (numpy.load itself refuses headers over 10,000 bytes by default).
const (
	MaxHeader = 1 << 16
	MaxDims   = 64
)

// magic starts every .npy file.
const magic = "\x93NUMPY"

// chunk is how many bytes Read reads at a time, so that memory grows with the
// data that is really there, not with the size a header claims.
const chunk = 1 << 16

// ErrFormat is wrapped by the errors of Read for input that is not a
// well-formed .npy file.
var ErrFormat = errors.New("not a NumPy .npy file")

// WriteHeader writes the header of a C-ordered .npy file (format version 1.0)
// of the given element type and shape; the data must follow, row after row,
// little-endian (see WriteFloat32s). A nil or empty shape declares a 0-d array
// of one value. It returns an error for an unknown dtype, a negative
// dimension, or a shape too long for a version 1.0 header.
func WriteHeader(w io.Writer, dtype DType, shape []int) error {
	return WriteHeaderSize(w, dtype, shape, 0)
}

// WriteHeaderSize is WriteHeader with the header padded to size bytes, a
// multiple of 64 (0: the smallest that fits). A header written for the
// largest count an array can reach can then be rewritten in place, with
// the same size, once the real count is known. It returns an error if
// the header does not fit in size.
func WriteHeaderSize(w io.Writer, dtype DType, shape []int, size int) error {
	if dtype != Float32 && dtype != Uint8 {
		return fmt.Errorf("npy header: dtype %q: want %q or %q", dtype, Float32, Uint8)
	}
	dims := make([]string, len(shape))
	for i, d := range shape {
		if d < 0 {
			return fmt.Errorf("npy header: shape %v: negative dimension", shape)
		}
		dims[i] = strconv.Itoa(d)
	}
	tuple := "(" + strings.Join(dims, ", ")
	if len(shape) == 1 {
		tuple += ","
	}
	tuple += ")"
	dict := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': %s, }", dtype, tuple)
	// magic (6) + version (2) + length (2) + dict + padding + "\n" is a
	// multiple of 64.
	total := (10 + len(dict) + 1 + 63) / 64 * 64
	switch {
	case size == 0:
	case size%64 != 0 || size < total:
		return fmt.Errorf("npy header: shape %v needs %d bytes, not %d", shape, total, size)
	default:
		total = size
	}
	if total-10 > math.MaxUint16 {
		return fmt.Errorf("npy header: shape of %d dimensions: too long for a version 1.0 header", len(shape))
	}
	hdr := make([]byte, 0, total)
	hdr = append(hdr, magic+"\x01\x00"...)
	hdr = binary.LittleEndian.AppendUint16(hdr, uint16(total-10))
	hdr = append(hdr, dict...)
	for len(hdr) < total-1 {
		hdr = append(hdr, ' ')
	}
	hdr = append(hdr, '\n')
	if _, err := w.Write(hdr); err != nil {
		return fmt.Errorf("npy header: %w", err)
	}
	return nil
}

// WriteFloat32s writes v little-endian, the data of a Float32 array after its
// header.
func WriteFloat32s(w io.Writer, v []float32) error {
	buf := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(x))
	}
	if _, err := w.Write(buf); err != nil {
		return fmt.Errorf("npy data: %w", err)
	}
	return nil
}

// Write writes data as a whole float32 .npy file of the given shape, which
// must hold exactly len(data) values (the product of its dimensions; 1 for
// an empty shape).
func Write(w io.Writer, data []float32, shape []int) error {
	n, err := count(shape)
	if err != nil {
		return fmt.Errorf("npy: %w", err)
	}
	if n != len(data) {
		return fmt.Errorf("npy: shape %v holds %d values, have %d", shape, n, len(data))
	}
	if err := WriteHeader(w, Float32, shape); err != nil {
		return err
	}
	return WriteFloat32s(w, data)
}

// Read reads a whole .npy file of float32, float64 or uint8 values (dtype
// '<f4', '>f4', '<f8', '>f8' or '|u1'; format version 1.0, 2.0 or 3.0; C
// order) from r, to its end. It returns the values as float32 (float64
// values rounded to the nearest float32, uint8 values as they are, 0 to
// 255), and the array's shape. Every dimension is >= 0 and
// len(data) is their product; a 0-d array has an empty shape and one value.
//
// A damaged or truncated file, a header over MaxHeader bytes or of more than
// MaxDims dimensions, or bytes after the data give an error that wraps
// ErrFormat (and io.ErrUnexpectedEOF for missing data). Another dtype and a
// Fortran-ordered array give an error that says so. Read never allocates much
// more than the data it has read.
func Read(r io.Reader) (data []float32, shape []int, err error) {
	ar, err := NewReader(r)
	if err != nil {
		return nil, nil, err
	}
	data = make([]float32, 0, min(ar.Len(), chunk))
	for {
		if len(data) == cap(data) {
			data = slices.Grow(data, min(ar.Len()-len(data), len(data)+1))
		}
		k, err := ar.Read(data[len(data):cap(data)])
		data = data[:len(data)+k]
		if err == io.EOF {
			return data, ar.Shape(), nil
		}
		if err != nil {
			return nil, nil, err
		}
	}
}

// A Reader reads the values of one .npy array in order, as many at a time
// as its caller asks for, so that memory need not grow with the array. It
// takes the formats that Read takes.
type Reader struct {
	r     io.Reader
	h     header
	size  int // bytes per value
	order binary.ByteOrder
	n     int // values in all
	done  int // values read
	buf   []byte
	head  int64 // bytes of the header
}

// NewReader reads and checks the header of the .npy array that r holds;
// the values follow (Reader.Read).
func NewReader(r io.Reader) (*Reader, error) {
	counted := &countingReader{r: r}
	h, err := readHeader(counted)
	if err != nil {
		return nil, err
	}
	if h.fortran {
		return nil, errors.New("Fortran-ordered array: save it in C order (numpy.ascontiguousarray)")
	}
	ar := &Reader{r: r, h: h, head: counted.n}
	switch h.descr {
	case "<f4":
		ar.size, ar.order = 4, binary.LittleEndian
	case ">f4":
		ar.size, ar.order = 4, binary.BigEndian
	case "<f8":
		ar.size, ar.order = 8, binary.LittleEndian
	case ">f8":
		ar.size, ar.order = 8, binary.BigEndian
	case "|u1", "<u1", ">u1":
		ar.size = 1
	default:
		return nil, fmt.Errorf("dtype %s: want float32 (<f4), float64 (<f8) or uint8 (|u1)", h.descr)
	}
	if ar.n, err = count(h.shape); err != nil || ar.n > math.MaxInt/ar.size {
		return nil, fmt.Errorf("%w: shape %v is too large", ErrFormat, h.shape)
	}
	return ar, nil
}

// Shape returns the array's shape; the caller must not change it.
func (r *Reader) Shape() []int { return r.h.shape }

// Len returns the number of values of the array: the product of its shape.
func (r *Reader) Len() int { return r.n }

// Uint8 reports whether the array holds uint8 values.
func (r *Reader) Uint8() bool { return r.size == 1 }

// Offset returns the byte offset in the file of value i: the header's
// size plus i values.
func (r *Reader) Offset(i int) int64 { return r.head + int64(i)*int64(r.size) }

// Resume carries on reading at value i from src, which the caller has
// positioned at Offset(i) (by seeking the file under a reader, say).
func (r *Reader) Resume(src io.Reader, i int) {
	r.r, r.done = src, max(0, min(i, r.n))
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	k, err := c.r.Read(p)
	c.n += int64(k)
	return k, err
}

// Read reads the next len(dst) values of the array, or those left, into
// dst, as float32 (see the package's Read), and returns how many it read.
// After the last value it returns io.EOF, once it has checked that the
// file ends there. Damaged and truncated files give the errors of the
// package's Read.
func (r *Reader) Read(dst []float32) (int, error) {
	if r.done == r.n {
		var one [1]byte
		switch k, err := io.ReadFull(r.r, one[:]); {
		case k > 0:
			return 0, fmt.Errorf("%w: bytes after the %d values of shape %v", ErrFormat, r.n, r.h.shape)
		case err != io.EOF:
			return 0, fmt.Errorf("npy data: %w", err)
		}
		return 0, io.EOF
	}
	want := min(len(dst), r.n-r.done, chunk/r.size)
	if cap(r.buf) < want*r.size {
		r.buf = make([]byte, min(r.n*r.size, chunk))
	}
	b := r.buf[:want*r.size]
	if k, err := io.ReadFull(r.r, b); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, fmt.Errorf("%w: shape %v needs %d bytes of data, the file ends after %d: %w",
			ErrFormat, r.h.shape, r.n*r.size, r.done*r.size+k, err)
	}
	for i := range want {
		switch r.size {
		case 1:
			dst[i] = float32(b[i])
		case 4:
			dst[i] = math.Float32frombits(r.order.Uint32(b[4*i:]))
		default:
			dst[i] = float32(math.Float64frombits(r.order.Uint64(b[8*i:])))
		}
	}
	r.done += want
	return want, nil
}

// ReadFile reads the .npy file at path (see Read). Errors name the path.
func ReadFile(path string) (data []float32, shape []int, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	data, shape, err = Read(bufio.NewReader(f))
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return data, shape, nil
}

// header is what a .npy header declares.
type header struct {
	descr   string
	fortran bool
	shape   []int
}

// readHeader reads the magic string, the version, the header length and the
// header dictionary.
func readHeader(r io.Reader) (header, error) {
	var pre [8]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		return header{}, fmt.Errorf("%w: too short for the magic string", ErrFormat)
	}
	if string(pre[:6]) != magic {
		return header{}, fmt.Errorf("%w: no magic string", ErrFormat)
	}
	var n uint32
	switch major, minor := pre[6], pre[7]; {
	case minor != 0 || major < 1 || major > 3:
		return header{}, fmt.Errorf("%w: format version %d.%d, want 1.0, 2.0 or 3.0", ErrFormat, major, minor)
	case major == 1:
		var l [2]byte
		if _, err := io.ReadFull(r, l[:]); err != nil {
			return header{}, fmt.Errorf("%w: header length: %w", ErrFormat, io.ErrUnexpectedEOF)
		}
		n = uint32(binary.LittleEndian.Uint16(l[:]))
	default:
		var l [4]byte
		if _, err := io.ReadFull(r, l[:]); err != nil {
			return header{}, fmt.Errorf("%w: header length: %w", ErrFormat, io.ErrUnexpectedEOF)
		}
		n = binary.LittleEndian.Uint32(l[:])
	}
	if n > MaxHeader {
		return header{}, fmt.Errorf("%w: header of %d bytes, at most %d allowed", ErrFormat, n, MaxHeader)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return header{}, fmt.Errorf("%w: header of %d bytes truncated: %w", ErrFormat, n, io.ErrUnexpectedEOF)
	}
	h, err := parseDict(string(b))
	if err != nil {
		return header{}, fmt.Errorf("%w: header %q: %w", ErrFormat, truncate(string(b), 120), err)
	}
	return h, nil
}

// parseDict parses the header dictionary, a Python literal such as
//
//	{'descr': '<f4', 'fortran_order': False, 'shape': (3, 10), }
//
// followed by spaces and a newline. It takes the subset of Python that
// numpy.save writes: strings in single or double quotes without escapes,
// True and False, tuples of non-negative decimal integers, and exactly the
// three keys, in any order.
func parseDict(s string) (header, error) {
	if !strings.HasSuffix(s, "\n") {
		return header{}, errors.New("does not end in a newline")
	}
	p := &parser{s: s}
	var h header
	seen := make(map[string]bool)
	if !p.eat('{') {
		return header{}, errors.New("not a dictionary")
	}
	for {
		p.space()
		if p.eat('}') {
			break
		}
		key, err := p.str()
		if err != nil {
			return header{}, fmt.Errorf("key: %w", err)
		}
		if seen[key] {
			return header{}, fmt.Errorf("key %q twice", key)
		}
		seen[key] = true
		p.space()
		if !p.eat(':') {
			return header{}, fmt.Errorf("no ':' after key %q", key)
		}
		p.space()
		switch key {
		case "descr":
			if h.descr, err = p.str(); err != nil {
				return header{}, fmt.Errorf("descr: %w", err)
			}
		case "fortran_order":
			if h.fortran, err = p.boolean(); err != nil {
				return header{}, fmt.Errorf("fortran_order: %w", err)
			}
		case "shape":
			if h.shape, err = p.tuple(); err != nil {
				return header{}, fmt.Errorf("shape: %w", err)
			}
		default:
			return header{}, fmt.Errorf("unknown key %q", key)
		}
		p.space()
		if p.eat('}') {
			break
		}
		if !p.eat(',') {
			return header{}, fmt.Errorf("no ',' or '}' after %s", key)
		}
	}
	if !seen["descr"] || !seen["fortran_order"] || !seen["shape"] {
		return header{}, errors.New("want the keys 'descr', 'fortran_order' and 'shape'")
	}
	p.space()
	if p.i != len(p.s) {
		return header{}, errors.New("text after the dictionary")
	}
	return h, nil
}

// parser reads a header dictionary from s, at byte offset i.
type parser struct {
	s string
	i int
}

func (p *parser) space() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t' || p.s[p.i] == '\n' || p.s[p.i] == '\r') {
		p.i++
	}
}

// eat consumes c if it comes next.
func (p *parser) eat(c byte) bool {
	if p.i < len(p.s) && p.s[p.i] == c {
		p.i++
		return true
	}
	return false
}

// str reads a quoted string without escapes.
func (p *parser) str() (string, error) {
	if p.i >= len(p.s) || (p.s[p.i] != '\'' && p.s[p.i] != '"') {
		return "", errors.New("want a quoted string")
	}
	q := p.s[p.i]
	end := strings.IndexByte(p.s[p.i+1:], q)
	if end < 0 {
		return "", errors.New("unterminated string")
	}
	v := p.s[p.i+1 : p.i+1+end]
	if strings.ContainsAny(v, "\\\n") {
		return "", errors.New("escapes and newlines in strings are not supported")
	}
	p.i += end + 2
	return v, nil
}

func (p *parser) boolean() (bool, error) {
	switch {
	case strings.HasPrefix(p.s[p.i:], "True"):
		p.i += len("True")
		return true, nil
	case strings.HasPrefix(p.s[p.i:], "False"):
		p.i += len("False")
		return false, nil
	}
	return false, errors.New("want True or False")
}

// tuple reads a Python tuple of non-negative integers: (), (n,), (n, m) or
// (n, m,). The result is empty, not nil, for ().
func (p *parser) tuple() ([]int, error) {
	if !p.eat('(') {
		return nil, errors.New("want a tuple")
	}
	dims := []int{}
	p.space()
	if p.eat(')') {
		return dims, nil
	}
	for {
		start := p.i
		for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
			p.i++
		}
		if p.i == start {
			return nil, errors.New("want a non-negative integer")
		}
		d, err := strconv.Atoi(p.s[start:p.i])
		if err != nil {
			return nil, fmt.Errorf("dimension %s out of range", p.s[start:p.i])
		}
		if dims = append(dims, d); len(dims) > MaxDims {
			return nil, fmt.Errorf("more than %d dimensions", MaxDims)
		}
		p.space()
		comma := p.eat(',')
		p.space()
		if p.eat(')') {
			if len(dims) == 1 && !comma {
				// (n) is n in Python, not a tuple; numpy writes (n,).
				return nil, errors.New("(n) is not a tuple: want (n,)")
			}
			return dims, nil
		}
		if !comma {
			return nil, errors.New("want ',' or ')'")
		}
	}
}

// count returns the number of values of an array of the given shape, or an
// error for a negative dimension or a product that overflows int.
func count(shape []int) (int, error) {
	n := 1
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("shape %v: negative dimension", shape)
		}
		if d != 0 && n > math.MaxInt/d {
			return 0, fmt.Errorf("shape %v: too many values", shape)
		}
		n *= d
	}
	return n, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
