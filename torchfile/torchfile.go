// Package torchfile reads the tensors of a PyTorch state dict, as written by
// torch.save(model.state_dict(), "model.pth") with torch >= 1.6: a zip
// archive holding <prefix>/data.pkl (a pickle of the dict), one
// <prefix>/data/<key> entry per storage, <prefix>/version and, with newer
// versions, a byteorder entry. No code from the file is run: the pickle is
// interpreted by github.com/nlpodyssey/gopickle with an allow list of classes.
//
// Read does not use gopickle's pytorch.Load (v0.3.0), which is not safe for
// files from elsewhere: it allocates whatever storage size and string length
// the pickle claims before reading any data, panics on the legacy format and
// on some malformed pickles, accepts any class (a whole pickled model loads
// as generic objects), reads every storage eagerly, and only opens files by
// name. Instead Read drives gopickle's pickle.Unpickler itself:
//
//   - data.pkl (at most maxPickle bytes) is first scanned without being
//     run: only the opcodes that torch.save writes are accepted, every
//     length must fit in the bytes that follow, GLOBAL and STACK_GLOBAL
//     must name allowed classes as constant strings, and an estimate of the
//     unpickler's memory, its error messages included, is capped
//     (maxPickleCost);
//   - classes are restricted to collections.OrderedDict,
//     torch._utils._rebuild_tensor_v2, torch._utils._rebuild_parameter and
//     the torch.<Type>Storage classes; anything else (a module class of a
//     whole pickled model, say) is refused with ErrNotStateDict;
//   - storages are lazy: the pickle yields references, each checked against
//     the size of its zip entry and each tensor's shape, stride and offset
//     checked against its storage before any data is read, and only float32
//     storages are read at all, within MaxSize;
//   - any panic inside the unpickler is recovered and returned as an error.
package torchfile

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// Tensor is one entry of a state dict.
type Tensor struct {
	// Name is the entry's key, e.g. "encoder.0.weight".
	Name string
	// DType is PyTorch's name of the element type: "float32", "float64",
	// "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8",
	// "bool", "complex64" or "complex128".
	DType string
	// Shape is the tensor's size, outermost dimension first; it is empty
	// (length 0) for a 0-d tensor, which holds one value.
	Shape []int
	// Data holds the values in row-major (C-contiguous) order of Shape,
	// whatever the strides in the file were, converted from float32 storage
	// only: it is nil when DType is not "float32", and empty, not nil, for a
	// float32 tensor with a zero dimension. Each Tensor owns its Data and
	// Shape: tensors that share a storage in the file get separate copies.
	Data []float32
}

// MaxSize is the limit, in bytes, on the file that Load reads, on the
// uncompressed zip entries that Read reads (data.pkl and the float32
// storages), and on the total size of the Data that Read returns (4 bytes a
// value).
const MaxSize = 1 << 30

// Limits on data.pkl. A state dict's pickle takes about 150 bytes a tensor,
// and its strings are tensor names, device names and storage keys.
const (
	maxPickle     = 16 << 20  // bytes of data.pkl
	maxPickleCost = 256 << 20 // estimated bytes the unpickler allocates
	maxString     = 4096      // bytes of one string or GLOBAL line
	maxBuilds     = 64        // BUILD opcodes (torch.save writes one)
	maxDims       = 64        // dimensions of a tensor
)

// ErrFormat is wrapped by the errors for input that is not a well-formed
// PyTorch zip checkpoint, or too large: empty, truncated or corrupt data, a
// zip without data.pkl, a malformed pickle, a storage or view out of
// bounds, a limit exceeded.
var ErrFormat = errors.New("torchfile: not a well-formed PyTorch checkpoint")

// ErrNotStateDict is wrapped by the errors for a well-formed file that does
// not hold a state dict of tensors: a whole pickled model, a TorchScript
// archive, the legacy (pre-1.6) format, a dict with non-tensor values.
var ErrNotStateDict = errors.New("torchfile: not a state dict")

// saveHint says how to write a file that Read accepts.
const saveHint = "save it with torch.save(model.state_dict(), path)"

// Sniff reports whether data starts like a PyTorch zip checkpoint: the zip
// local file header magic ("PK\x03\x04") with a first entry named
// <prefix>/data.pkl, as torch.save writes it, or else, when data is a whole
// zip archive, an entry <prefix>/data.pkl anywhere in it. It does not check
// the rest of the file (Read does); a prefix of a file of at least the first
// header (30 bytes plus the entry's name) is enough.
func Sniff(data []byte) bool {
	const hdr = 30 // fixed part of a local file header
	if len(data) < hdr || string(data[:4]) != "PK\x03\x04" {
		return false
	}
	n := int(binary.LittleEndian.Uint16(data[26:28]))
	if len(data) >= hdr+n && isDataPkl(string(data[hdr:hdr+n])) {
		return true
	}
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return false
	}
	for _, f := range zr.File {
		if isDataPkl(f.Name) {
			return true
		}
	}
	return false
}

// isDataPkl reports whether name is data.pkl in a top-level folder.
func isDataPkl(name string) bool {
	prefix, ok := strings.CutSuffix(name, "/data.pkl")
	return ok && prefix != "" && !strings.Contains(prefix, "/")
}

// Load reads the file at path, which must not be over MaxSize (1 GiB), and
// returns Read's result for its bytes.
func Load(path string) ([]Tensor, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("torchfile: %w", err)
	}
	defer f.Close()
	var buf bytes.Buffer
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
		if fi.Size() > MaxSize {
			return nil, fmt.Errorf("torchfile: %s is %d bytes, over the limit of %d (MaxSize): export fewer or smaller tensors", path, fi.Size(), MaxSize)
		}
		buf.Grow(int(fi.Size()) + bytes.MinRead)
	}
	if _, err := buf.ReadFrom(io.LimitReader(f, MaxSize+1)); err != nil {
		return nil, fmt.Errorf("torchfile: reading %s: %w", path, err)
	}
	data := buf.Bytes()
	if len(data) > MaxSize {
		return nil, fmt.Errorf("torchfile: %s is over the limit of %d bytes (MaxSize): export fewer or smaller tensors", path, MaxSize)
	}
	ts, err := Read(data)
	if err != nil {
		return nil, fmt.Errorf("%w (file %s)", err, path)
	}
	return ts, nil
}

// Read parses the bytes of a .pth file written by torch.save (torch >= 1.6)
// and returns its tensors in the file's (state dict) order; a state dict
// without entries gives an empty slice. The top-level value must be a dict
// (OrderedDict or dict) from string names to tensors; its _metadata
// attribute is ignored. Read does not keep data, and the Tensors it returns
// share no memory with it or with each other.
//
// Memory is bounded whatever the input: data.pkl may be at most 16 MiB and
// its unpickling is estimated before it runs (enough for about 30,000
// tensors); the zip entries read (data.pkl and float32 storages only) and
// the Data returned may each total at most MaxSize. Tensors of other dtypes
// are checked against their storage's size but not read.
//
// The errors are one line, wrap ErrFormat (damaged or truncated files,
// files of another kind, limits exceeded) or ErrNotStateDict (a whole
// model, TorchScript, the legacy format, non-tensor values), and say what
// to do. Read never panics on bad input.
func Read(data []byte) (ts []Tensor, err error) {
	defer func() {
		if r := recover(); r != nil {
			if onPanic != nil {
				onPanic(debug.Stack())
			}
			ts, err = nil, fmt.Errorf("%w: the pickle in data.pkl is malformed (%s): re-save the file", ErrFormat, clip(fmt.Sprint(r)))
		}
	}()
	a, err := openArchive(data)
	if err != nil {
		return nil, err
	}
	top, err := a.unpickle()
	if err != nil {
		return nil, err
	}
	entries, err := stateDictEntries(top)
	if err != nil {
		return nil, err
	}
	return a.tensors(entries)
}

// onPanic, when set (by tests), gets the stack of each panic that Read
// recovers from.
var onPanic func(stack []byte)

// quote quotes s, shortened to at most 100 bytes, for an error message.
func quote(s string) string {
	if len(s) > 100 {
		s = s[:100] + "..."
	}
	return strconv.Quote(s)
}

// clip shortens a message from a library to one line of at most 200 bytes.
func clip(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// legacyMagic starts a file in the legacy format: PROTO 2, then LONG1 with
// the 10 bytes of the magic number 0x1950a86a20f9469cfc6c, little-endian.
const legacyMagic = "\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"

// archive is an opened checkpoint.
type archive struct {
	size    int64                // of the input
	prefix  string               // "<prefix>/", shared by all entries
	files   map[string]*zip.File // by full name
	order   binary.ByteOrder     // of the storages
	budget  int64                // bytes left to read and return (MaxSize)
	storage map[string]*storageRef
}

// openArchive checks data's kind and opens the zip.
func openArchive(data []byte) (*archive, error) {
	switch {
	case len(data) == 0:
		return nil, fmt.Errorf("%w: the input is empty: want the bytes of a .pth file written by torch.save", ErrFormat)
	case strings.HasPrefix(string(data), legacyMagic):
		return nil, fmt.Errorf("%w: the file is in the legacy (pre-1.6, not zip) format: load it and re-save it with torch >= 1.6: torch.save(model.state_dict(), path)", ErrNotStateDict)
	case len(data) < 4 || string(data[:4]) != "PK\x03\x04":
		return nil, fmt.Errorf("%w: no zip header: want a .pth file written by torch.save (torch >= 1.6)", ErrFormat)
	}
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, fmt.Errorf("%w: reading the zip: %s (truncated or corrupt file?)", ErrFormat, clip(err.Error()))
	}
	a := &archive{size: int64(len(data)), files: make(map[string]*zip.File, len(zr.File)), order: binary.LittleEndian,
		budget: MaxSize, storage: map[string]*storageRef{}}
	for _, f := range zr.File {
		if _, dup := a.files[f.Name]; dup {
			return nil, fmt.Errorf("%w: the zip has two entries named %s: re-save the file", ErrFormat, quote(f.Name))
		}
		a.files[f.Name] = f
		if isDataPkl(f.Name) {
			if a.prefix != "" {
				return nil, fmt.Errorf("%w: the zip has two data.pkl entries (%s, %s): re-save the file", ErrFormat, quote(a.prefix+"data.pkl"), quote(f.Name))
			}
			a.prefix = strings.TrimSuffix(f.Name, "data.pkl")
		}
	}
	if a.prefix == "" {
		return nil, fmt.Errorf("%w: the zip has no <prefix>/data.pkl entry: it was not written by torch.save", ErrFormat)
	}
	if _, ok := a.files[a.prefix+"constants.pkl"]; ok {
		return nil, fmt.Errorf("%w: the file is a TorchScript archive (torch.jit.save): %s", ErrNotStateDict, saveHint)
	}
	bo, ok := a.files[a.prefix+"byteorder"]
	if !ok {
		bo = a.files["byteorder"]
	}
	if bo != nil {
		b, err := a.read(bo, 16)
		if err != nil {
			return nil, err
		}
		switch string(b) {
		case "little":
		case "big":
			a.order = binary.BigEndian
		default:
			return nil, fmt.Errorf("%w: entry %s says %s, want \"little\" or \"big\": re-save the file", ErrFormat, quote(bo.Name), quote(string(b)))
		}
	}
	return a, nil
}

// read returns the uncompressed bytes of f, which must be at most max bytes
// and within the archive's budget, checking the zip's CRC.
func (a *archive) read(f *zip.File, max int64) ([]byte, error) {
	size := f.UncompressedSize64
	if size > uint64(max) {
		return nil, fmt.Errorf("%w: entry %s is %d bytes uncompressed, over the limit of %d: re-save the file with fewer or smaller tensors", ErrFormat, quote(f.Name), size, max)
	}
	if int64(size) > a.budget {
		return nil, fmt.Errorf("%w: entry %s (%d bytes) takes the data read past the limit of %d bytes (MaxSize): export fewer or smaller tensors", ErrFormat, quote(f.Name), size, MaxSize)
	}
	// Memory must grow with the data really there, not with the size a
	// header claims: a stored entry lies within the input, a compressed
	// one is read in steps.
	capacity := size
	switch {
	case f.Method == zip.Store && (f.CompressedSize64 != size || size > uint64(a.size)):
		return nil, fmt.Errorf("%w: entry %s: its header says %d bytes stored as %d, in a file of %d (truncated or corrupt file?)", ErrFormat, quote(f.Name), size, f.CompressedSize64, a.size)
	case f.Method != zip.Store:
		capacity = min(size, 1<<20)
	}
	rc, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("%w: opening entry %s: %s (truncated or corrupt file?)", ErrFormat, quote(f.Name), clip(err.Error()))
	}
	defer rc.Close()
	b := make([]byte, 0, capacity)
	for uint64(len(b)) < size && err == nil {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)] // grow
		}
		var n int
		n, err = rc.Read(b[len(b):min(uint64(cap(b)), size)])
		b = b[:len(b)+n]
	}
	if uint64(len(b)) < size {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("%w: reading entry %s: %s (truncated or corrupt file?)", ErrFormat, quote(f.Name), clip(err.Error()))
	}
	// One more read reaches the end, where the zip reader checks the CRC.
	var one [1]byte
	if n, err := io.ReadAtLeast(rc, one[:], 1); n != 0 || err != io.EOF {
		if err == nil || err == io.EOF {
			err = errors.New("longer than its header says")
		}
		return nil, fmt.Errorf("%w: reading entry %s: %s (truncated or corrupt file?)", ErrFormat, quote(f.Name), clip(err.Error()))
	}
	a.budget -= int64(size)
	return b, nil
}
