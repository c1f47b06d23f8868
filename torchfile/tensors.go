package torchfile

import (
	"fmt"
	"math"
	"slices"

	"github.com/nlpodyssey/gopickle/types"
)

// entry is one key and value of the unpickled dict.
type entry struct {
	name  string
	value any
}

// stateDictEntries returns the items of the top-level dict in order.
func stateDictEntries(top any) ([]entry, error) {
	var out []entry
	index := map[string]int{}
	add := func(k, v any) error {
		name, ok := k.(string)
		if !ok {
			return fmt.Errorf("%w: the dict has a key that is %s, want tensor names (strings): %s", ErrNotStateDict, describe(k), saveHint)
		}
		if i, dup := index[name]; dup { // a later value replaces, as in Python
			out[i].value = v
			return nil
		}
		index[name] = len(out)
		out = append(out, entry{name, v})
		return nil
	}
	switch d := top.(type) {
	case *types.OrderedDict:
		for e := d.List.Front(); e != nil; e = e.Next() {
			oe, ok := e.Value.(*types.OrderedDictEntry)
			if !ok {
				return nil, fmt.Errorf("%w: a malformed OrderedDict in data.pkl: re-save the file", ErrFormat)
			}
			if err := add(oe.Key, oe.Value); err != nil {
				return nil, err
			}
		}
	case *types.Dict:
		for _, e := range *d {
			if err := add(e.Key, e.Value); err != nil {
				return nil, err
			}
		}
	case *tensorRef:
		return nil, fmt.Errorf("%w: the file holds a single tensor, not a dict of them: save a dict, e.g. torch.save({\"name\": tensor}, path), or %s", ErrNotStateDict, saveHint)
	default:
		return nil, fmt.Errorf("%w: the file holds %s, not a dict of tensors: %s", ErrNotStateDict, describe(top), saveHint)
	}
	return out, nil
}

// tensors checks the entries' values and converts float32 ones.
func (a *archive) tensors(entries []entry) ([]Tensor, error) {
	out := make([]Tensor, 0, len(entries))
	raw := map[*storageRef][]byte{}
	var values int64 // float32 values returned so far
	for _, e := range entries {
		t, ok := e.value.(*tensorRef)
		if !ok {
			return nil, fmt.Errorf("%w: entry %s is %s, not a tensor (a checkpoint with other parts?): %s", ErrNotStateDict, quote(e.name), describe(e.value), saveHint)
		}
		ten := Tensor{Name: e.name, DType: t.storage.class.dtype, Shape: append([]int{}, t.shape...)}
		if ten.DType == "float32" {
			n := int64(1)
			if slices.Contains(t.shape, 0) {
				n = 0
			}
			for _, d := range t.shape {
				if n != 0 && n > (MaxSize/4-values)/int64(d) {
					return nil, fmt.Errorf("%w: tensor %s of shape %v takes the values returned past the limit of %d bytes (MaxSize): export fewer or smaller tensors", ErrFormat, quote(e.name), t.shape, MaxSize)
				}
				n *= int64(d)
			}
			values += n
			src, ok := raw[t.storage]
			if !ok && n > 0 {
				var err error
				if src, err = a.read(t.storage.file, MaxSize); err != nil {
					return nil, err
				}
				raw[t.storage] = src
			}
			ten.Data = make([]float32, n)
			if n > 0 {
				a.gather(ten.Data, src, t)
			}
		}
		out = append(out, ten)
	}
	return out, nil
}

// gather copies the values of the view t of the float32 storage src into
// dst, in row-major order; rebuildTensor has checked that the view is within
// src, and persistentLoad that src holds the storage's values.
func (a *archive) gather(dst []float32, src []byte, t *tensorRef) {
	at := func(i int64) float32 { return math.Float32frombits(a.order.Uint32(src[4*i:])) }
	nd := len(t.shape)
	if nd == 0 {
		dst[0] = at(t.offset)
		return
	}
	// Walk the indices, innermost fastest.
	idx := make([]int, nd)
	pos := t.offset
	for k := range dst {
		dst[k] = at(pos)
		for d := nd - 1; d >= 0; d-- {
			idx[d]++
			pos += t.stride[d]
			if idx[d] < t.shape[d] {
				break
			}
			pos -= t.stride[d] * int64(t.shape[d])
			idx[d] = 0
		}
	}
}
