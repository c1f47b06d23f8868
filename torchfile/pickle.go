package torchfile

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"

	"github.com/nlpodyssey/gopickle/pickle"
	"github.com/nlpodyssey/gopickle/types"
)

// storageClass is a torch.<Type>Storage class, which names a dtype.
type storageClass struct {
	name  string // e.g. "FloatStorage"
	dtype string // e.g. "float32"
	size  int64  // bytes of one element
}

var storageClasses = map[string]*storageClass{}

func init() {
	for _, c := range []storageClass{
		{"FloatStorage", "float32", 4}, {"DoubleStorage", "float64", 8},
		{"HalfStorage", "float16", 2}, {"BFloat16Storage", "bfloat16", 2},
		{"LongStorage", "int64", 8}, {"IntStorage", "int32", 4},
		{"ShortStorage", "int16", 2}, {"CharStorage", "int8", 1},
		{"ByteStorage", "uint8", 1}, {"BoolStorage", "bool", 1},
		{"ComplexFloatStorage", "complex64", 8}, {"ComplexDoubleStorage", "complex128", 16},
	} {
		storageClasses[c.name] = &c
	}
}

// allowedClass returns the object standing for the class module.name, or
// false for a class that a state dict does not use.
func allowedClass(module, name string) (any, bool) {
	switch module + "." + name {
	case "collections.OrderedDict":
		return &types.OrderedDictClass{}, true
	case "torch._utils._rebuild_tensor_v2":
		return rebuildTensor{}, true
	case "torch._utils._rebuild_parameter":
		return rebuildParameter{}, true
	}
	if module == "torch" {
		if c, ok := storageClasses[name]; ok {
			return c, true
		}
	}
	return nil, false
}

func classError(module, name string) error {
	return fmt.Errorf("%w: data.pkl refers to class %s.%s, which a state dict of tensors does not use (a whole pickled model?): %s",
		ErrNotStateDict, clip(module), clip(name), saveHint)
}

// scanPickle checks the pickle p without running it, so that running it
// with gopickle takes bounded memory and time and cannot call anything but
// the allowed classes:
//
//   - every opcode must be one that torch.save writes (protocols 2 to 4, no
//     out-of-band data, no bytes, no sets, no class instantiation but by
//     REDUCE), and every length must fit in what follows;
//   - GLOBAL and STACK_GLOBAL must name an allowed class, given as constant
//     strings; the scan follows the stack and the memo to know them;
//   - the memory that gopickle allocates is estimated and capped
//     (maxPickleCost). Each push of a string, even from the memo, counts
//     its length, which also bounds gopickle's error messages: they print
//     an offending value with %#v, which shows every string in it.
//
// The unpickler stops at the first STOP, and so does the scan.
func scanPickle(p []byte) error {
	bad := func(at int, format string, args ...any) error {
		return fmt.Errorf("%w: data.pkl, byte %d: %s: re-save the file", ErrFormat, at, fmt.Sprintf(format, args...))
	}
	// The scan's model of gopickle's state: the stack, split by MARKs into
	// segments (only the last is visible to pops), and the memo. A value is
	// a string p[off:off+n] when n >= 0, anything else when n < 0.
	type value struct{ off, n int }
	other := value{0, -1}
	var (
		stack  []value
		marks  []int // where each segment starts in stack
		memo   = map[int]value{}
		cost   int64
		builds int
	)
	base := func() int {
		if len(marks) == 0 {
			return 0
		}
		return marks[len(marks)-1]
	}
	push := func(v value) {
		stack = append(stack, v)
		if v.n > 0 {
			cost += int64(v.n)
		}
	}
	// pop removes k values from the last segment.
	pop := func(k int) ([]value, bool) {
		if len(stack)-base() < k {
			return nil, false
		}
		vs := stack[len(stack)-k:]
		stack = stack[:len(stack)-k]
		return vs, true
	}
	popMark := func() bool {
		if len(marks) == 0 {
			return false
		}
		stack, marks = stack[:marks[len(marks)-1]], marks[:len(marks)-1]
		return true
	}
	top := func() (value, bool) {
		if len(stack) == base() {
			return value{}, false
		}
		return stack[len(stack)-1], true
	}
	for i := 0; i < len(p); {
		at := i
		op := p[i]
		i++
		// arg returns the next n bytes.
		arg := func(n uint64) ([]byte, error) {
			if n > uint64(len(p)-i) {
				return nil, bad(at, "opcode 0x%02x needs %d bytes, %d are left (truncated?)", op, n, len(p)-i)
			}
			b := p[i : i+int(n)]
			i += int(n)
			return b, nil
		}
		// str pushes a string of the length given in the next n bytes.
		str := func(n uint64) error {
			b, err := arg(n)
			if err != nil {
				return err
			}
			var l uint64
			for k := len(b) - 1; k >= 0; k-- {
				l = l<<8 | uint64(b[k])
			}
			if l > maxString {
				return bad(at, "a string of %d bytes, over the limit of %d", l, maxString)
			}
			off := i
			if _, err = arg(l); err != nil {
				return err
			}
			push(value{off, int(l)})
			return nil
		}
		line := func() (string, error) {
			end := bytes.IndexByte(p[i:min(len(p), i+maxString+1)], '\n')
			if end < 0 {
				return "", bad(at, "GLOBAL without a newline within %d bytes (truncated?)", maxString)
			}
			s := string(p[i : i+end])
			i += end + 1
			return s, nil
		}
		index := func(n uint64) (int, error) {
			b, err := arg(n)
			if err != nil {
				return 0, err
			}
			if n == 1 {
				return int(b[0]), nil
			}
			return int(binary.LittleEndian.Uint32(b)), nil
		}
		underflow := func() error { return bad(at, "opcode 0x%02x with too few values on the stack", op) }
		// Estimated bytes, an upper bound of what gopickle allocates: any
		// value takes a stack slot, may be memoized and may be set in an
		// OrderedDict (160); some opcodes make a new object besides.
		cost += 160
		var err error
		switch op {
		case '.': // STOP
			if _, ok := pop(1); !ok {
				return underflow()
			}
			return nil
		case '(': // MARK
			cost += 320
			marks = append(marks, len(stack))
		case '0': // POP, or POP_MARK on an empty segment
			if _, ok := pop(1); !ok && !popMark() {
				err = underflow()
			}
		case '1': // POP_MARK
			if !popMark() {
				err = underflow()
			}
		case '2': // DUP
			if v, ok := top(); ok {
				push(v)
			} else {
				err = underflow()
			}
		case 'N', 0x88, 0x89: // NONE NEWTRUE NEWFALSE
			push(other)
		case 'K': // BININT1
			_, err = arg(1)
			push(other)
		case 'M': // BININT2
			_, err = arg(2)
			push(other)
		case 'J': // BININT
			_, err = arg(4)
			push(other)
		case 'G': // BINFLOAT
			_, err = arg(8)
			push(other)
		case 0x8a: // LONG1
			var b []byte
			if b, err = arg(1); err == nil {
				if b[0] == 0 {
					err = bad(at, "LONG1 of 0 bytes")
				} else {
					_, err = arg(uint64(b[0]))
					cost += int64(b[0])
				}
			}
			push(other)
		case 'X': // BINUNICODE
			err = str(4)
		case 0x8c: // SHORT_BINUNICODE
			err = str(1)
		case 0x8d: // BINUNICODE8
			err = str(8)
		case 'c': // GLOBAL
			var module, name string
			if module, err = line(); err == nil {
				if name, err = line(); err == nil {
					if _, ok := allowedClass(module, name); !ok {
						err = classError(module, name)
					}
				}
			}
			push(other)
		case 0x93: // STACK_GLOBAL
			vs, ok := pop(2)
			if !ok {
				err = underflow()
				break
			}
			if vs[0].n < 0 || vs[1].n < 0 {
				err = bad(at, "STACK_GLOBAL of values that are not constant strings")
				break
			}
			module, name := string(p[vs[0].off:vs[0].off+vs[0].n]), string(p[vs[1].off:vs[1].off+vs[1].n])
			if _, ok := allowedClass(module, name); !ok {
				err = classError(module, name)
			}
			push(other)
		case 'Q': // BINPERSID
			if _, ok := pop(1); !ok {
				err = underflow()
			}
			push(other)
		case 'R', 'a', 0x86: // REDUCE APPEND TUPLE2: two values make one
			if _, ok := pop(2); !ok {
				err = underflow()
			}
			push(other)
			if op == 'R' { // an OrderedDict or a tensor
				cost += 320
			}
		case 0x85: // TUPLE1
			if _, ok := pop(1); !ok {
				err = underflow()
			}
			push(other)
			cost += 96
		case 0x87: // TUPLE3
			if _, ok := pop(3); !ok {
				err = underflow()
			}
			push(other)
			cost += 96
		case 'd', 'l', 't': // DICT LIST TUPLE
			if !popMark() {
				err = underflow()
			}
			push(other)
			cost += 96
		case '}': // EMPTY_DICT
			push(other)
			cost += 192
		case ']': // EMPTY_LIST
			push(other)
			cost += 128
		case ')': // EMPTY_TUPLE
			push(other)
			cost += 96
		case 'e', 'u': // APPENDS SETITEMS: pop to the mark, then the list or dict
			if !popMark() {
				err = underflow()
			} else if _, ok := pop(1); !ok {
				err = underflow()
			}
			push(other)
		case 's': // SETITEM
			if _, ok := pop(2); !ok {
				err = underflow()
			} else if _, ok := top(); !ok {
				err = underflow()
			}
		case 'b': // BUILD
			builds++
			if builds > maxBuilds {
				return bad(at, "more than %d BUILD opcodes", maxBuilds)
			}
			if _, ok := pop(1); !ok {
				err = underflow()
			} else if _, ok := top(); !ok {
				err = underflow()
			}
		case 'h', 'j': // BINGET LONG_BINGET
			var k int
			if k, err = index(argSize(op == 'h')); err == nil {
				v, ok := memo[k]
				if !ok {
					v = other // gopickle pushes nil
				}
				push(v)
			}
		case 'q', 'r', 0x94: // BINPUT LONG_BINPUT MEMOIZE
			k := len(memo)
			if op != 0x94 {
				k, err = index(argSize(op == 'q'))
			}
			if err == nil {
				if v, ok := top(); ok {
					memo[k] = v
				} else {
					err = underflow()
				}
			}
			cost += 64
		case 0x80: // PROTO
			var b []byte
			if b, err = arg(1); err == nil && b[0] > 5 {
				err = bad(at, "pickle protocol %d, want 2 to 5", b[0])
			}
		case 0x95: // FRAME
			var b []byte
			if b, err = arg(8); err == nil {
				n := binary.LittleEndian.Uint64(b)
				if n > uint64(len(p)-i) {
					err = bad(at, "a frame of %d bytes, %d are left (truncated?)", n, len(p)-i)
				}
				cost += int64(n)
			}
		default:
			return bad(at, "opcode 0x%02x, which torch.save does not write", op)
		}
		if err != nil {
			return err
		}
		if cost > maxPickleCost {
			return bad(at, "the pickle would take more than %d bytes of memory to load", maxPickleCost)
		}
	}
	return fmt.Errorf("%w: data.pkl ends without a STOP opcode (truncated?): re-save the file", ErrFormat)
}

// argSize returns the size of a memo index: 1 byte for BINGET and BINPUT
// (short), 4 for LONG_BINGET and LONG_BINPUT.
func argSize(short bool) uint64 {
	if short {
		return 1
	}
	return 4
}

// storageRef is a storage named by data.pkl, not read yet.
type storageRef struct {
	class *storageClass
	key   string
	numel int64
	file  *zip.File
}

// tensorRef is a tensor rebuilt by data.pkl: a view of a storage.
type tensorRef struct {
	storage *storageRef
	offset  int64
	shape   []int
	stride  []int64
}

// unpickle checks and runs data.pkl, returning the top-level value.
func (a *archive) unpickle() (any, error) {
	pkl, err := a.read(a.files[a.prefix+"data.pkl"], maxPickle)
	if err != nil {
		return nil, err
	}
	if err := scanPickle(pkl); err != nil {
		return nil, err
	}
	u := pickle.NewUnpickler(bytes.NewReader(pkl))
	u.FindClass = func(module, name string) (any, error) {
		if c, ok := allowedClass(module, name); ok {
			return c, nil
		}
		return nil, classError(module, name)
	}
	u.PersistentLoad = a.persistentLoad
	top, err := u.Load()
	if err != nil {
		if isOurs(err) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: the pickle in data.pkl is malformed (%s): re-save the file", ErrFormat, clip(err.Error()))
	}
	return top, nil
}

// isOurs reports whether err is one of this package's errors, passed
// through the unpickler.
func isOurs(err error) bool {
	return errors.Is(err, ErrFormat) || errors.Is(err, ErrNotStateDict)
}

// persistentLoad resolves a storage reference of data.pkl,
// ('storage', torch.<Type>Storage, key, location, numel), to the zip entry
// <prefix>/data/<key>, checking its size.
func (a *archive) persistentLoad(id any) (any, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: data.pkl: %s: re-save the file", ErrFormat, fmt.Sprintf(format, args...))
	}
	t, ok := id.(*types.Tuple)
	if !ok || t.Len() != 5 {
		return nil, bad("a persistent id that is %s, want a 5-tuple ('storage', type, key, location, size)", describe(id))
	}
	if s, ok := t.Get(0).(string); !ok || s != "storage" {
		return nil, bad("a persistent id of kind %s, want 'storage'", describe(t.Get(0)))
	}
	class, ok := t.Get(1).(*storageClass)
	if !ok {
		return nil, bad("a storage of type %s, want a torch.<Type>Storage class", describe(t.Get(1)))
	}
	key, ok := t.Get(2).(string)
	if !ok {
		return nil, bad("a storage key that is %s, want a string", describe(t.Get(2)))
	}
	numel, ok := t.Get(4).(int)
	if !ok || numel < 0 || int64(numel) > (1<<62)/class.size {
		return nil, bad("storage %s has size %s, want a non-negative int", quote(key), describe(t.Get(4)))
	}
	if s, seen := a.storage[key]; seen {
		if s.class != class || s.numel != int64(numel) {
			return nil, bad("storage %s is named twice with different types or sizes", quote(key))
		}
		return s, nil
	}
	name := a.prefix + "data/" + key
	f, ok := a.files[name]
	if !ok {
		return nil, fmt.Errorf("%w: storage entry %s is missing from the zip (truncated or damaged file?): re-save the file", ErrFormat, quote(name))
	}
	if want := uint64(numel) * uint64(class.size); f.UncompressedSize64 != want {
		return nil, bad("storage entry %s holds %d bytes, data.pkl says %d %s values (%d bytes)",
			quote(name), f.UncompressedSize64, numel, class.dtype, want)
	}
	s := &storageRef{class: class, key: key, numel: int64(numel), file: f}
	a.storage[key] = s
	return s, nil
}

// rebuildTensor is torch._utils._rebuild_tensor_v2(storage, storage_offset,
// size, stride, requires_grad, backward_hooks[, metadata]); it checks that
// the view stays within its storage.
type rebuildTensor struct{}

func (rebuildTensor) Call(args ...any) (any, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: data.pkl: _rebuild_tensor_v2: %s: re-save the file", ErrFormat, fmt.Sprintf(format, a...))
	}
	if len(args) != 6 && len(args) != 7 {
		return nil, bad("%d arguments, want 6 or 7", len(args))
	}
	s, ok := args[0].(*storageRef)
	if !ok {
		return nil, bad("a storage that is %s", describe(args[0]))
	}
	offset, ok := args[1].(int)
	if !ok || offset < 0 {
		return nil, bad("a storage offset that is %s, want a non-negative int", describe(args[1]))
	}
	size, ok1 := ints(args[2])
	stride, ok2 := ints(args[3])
	if !ok1 || !ok2 || len(size) != len(stride) || len(size) > maxDims {
		return nil, bad("size %s and stride %s, want two tuples of as many non-negative ints, at most %d",
			describe(args[2]), describe(args[3]), maxDims)
	}
	t := &tensorRef{storage: s, offset: int64(offset), shape: make([]int, len(size)), stride: make([]int64, len(size))}
	empty := false
	for d := range size {
		t.shape[d], t.stride[d] = size[d], int64(stride[d])
		empty = empty || size[d] == 0
	}
	if empty {
		return t, nil // no values: nothing to check
	}
	// The last value of the view must be in the storage.
	last := int64(offset)
	for d := range size {
		if size[d] > 1 && stride[d] > 0 {
			if int64(size[d]-1) > (s.numel-last)/int64(stride[d]) {
				return nil, bad("a view (offset %d, size %v, stride %v) past the end of its storage of %d values", offset, size, stride, s.numel)
			}
			last += int64(size[d]-1) * int64(stride[d])
		}
	}
	if last >= s.numel {
		return nil, bad("a view (offset %d, size %v, stride %v) past the end of its storage of %d values", offset, size, stride, s.numel)
	}
	return t, nil
}

// rebuildParameter is torch._utils._rebuild_parameter(data, requires_grad,
// backward_hooks), written for nn.Parameter values (state_dict(keep_vars=True)).
type rebuildParameter struct{}

func (rebuildParameter) Call(args ...any) (any, error) {
	if len(args) != 3 {
		return nil, fmt.Errorf("%w: data.pkl: _rebuild_parameter: %d arguments, want 3: re-save the file", ErrFormat, len(args))
	}
	t, ok := args[0].(*tensorRef)
	if !ok {
		return nil, fmt.Errorf("%w: data.pkl: _rebuild_parameter of %s, want a tensor: re-save the file", ErrFormat, describe(args[0]))
	}
	return t, nil
}

// ints returns the values of a tuple of non-negative ints.
func ints(v any) ([]int, bool) {
	t, ok := v.(*types.Tuple)
	if !ok || t.Len() > maxDims {
		return nil, false
	}
	out := make([]int, t.Len())
	for i := range out {
		n, ok := t.Get(i).(int)
		if !ok || n < 0 || n > 1<<53 {
			return nil, false
		}
		out[i] = n
	}
	return out, true
}

// describe names the kind of an unpickled value for an error message,
// without formatting the value (which may be large or self-referential).
func describe(v any) string {
	switch v := v.(type) {
	case nil:
		return "None"
	case string:
		if len(v) > 40 {
			return fmt.Sprintf("the string %q...", v[:40])
		}
		return fmt.Sprintf("the string %q", v)
	case int:
		return fmt.Sprintf("the int %d", v)
	case *big.Int:
		return "a very large int"
	case bool:
		return fmt.Sprintf("the bool %t", v)
	case float64:
		return "a float"
	case *types.Tuple:
		return fmt.Sprintf("a tuple of %d items", v.Len())
	case *types.List:
		return fmt.Sprintf("a list of %d items", v.Len())
	case *types.Dict:
		return fmt.Sprintf("a dict of %d items", v.Len())
	case *types.OrderedDict:
		return fmt.Sprintf("an OrderedDict of %d items", v.Len())
	case *storageRef:
		return "a bare storage"
	case *tensorRef:
		return "a tensor"
	case *storageClass:
		return "the class torch." + v.name
	}
	return fmt.Sprintf("a value of Go type %T", v)
}
