package torchfile

import (
	"errors"
	"strings"
	"testing"
)

// FuzzRead checks that Read never panics (init in torchfile_test.go turns a
// recovered panic of this package's code into a crash), and that it returns
// either an error wrapping ErrFormat or ErrNotStateDict, in one line, or
// tensors whose Data agrees with their DType and Shape.
//
// Since the zip's CRCs stop most changes to data.pkl, each input is also
// read as data.pkl itself, in a zip with the storages of each fixture. The
// seed corpus in testdata/fuzz/FuzzRead holds the fixtures and their
// data.pkl entries (f.Add adds the fixtures too).
func FuzzRead(f *testing.F) {
	for _, name := range []string{fxStateDict, fxProto4, fxStrided, fxFloat64, fxShared, fxModel, fxLegacy} {
		f.Add(fixture(f, name))
	}
	// The fixtures' entries other than data.pkl, under the prefix "archive/".
	var storages [][2][]string
	for _, name := range []string{fxStateDict, fxStrided, fxFloat64, fxShared} {
		var names, contents []string
		rezip(f, fixture(f, name), func(n string, b []byte) []byte {
			if !strings.HasSuffix(n, "/data.pkl") {
				names = append(names, "archive/"+n[strings.Index(n, "/")+1:])
				contents = append(contents, string(b))
			}
			return b
		})
		storages = append(storages, [2][]string{names, contents})
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		check(t, data)
		if len(data) > 1<<16 {
			return
		}
		for _, s := range storages {
			names := append([]string{"archive/data.pkl"}, s[0]...)
			contents := [][]byte{data}
			for _, c := range s[1] {
				contents = append(contents, []byte(c))
			}
			check(t, makeZip(t, names, contents))
		}
	})
}

// check reads data and checks the result.
func check(t *testing.T, data []byte) {
	t.Helper()
	ts, err := Read(data)
	if err != nil {
		if ts != nil {
			t.Errorf("tensors with the error %v", err)
		}
		if !errors.Is(err, ErrFormat) && !errors.Is(err, ErrNotStateDict) || strings.Contains(err.Error(), "\n") {
			t.Errorf("error %q: want one line wrapping ErrFormat or ErrNotStateDict", err)
		}
		return
	}
	if ts == nil {
		t.Fatal("nil tensors and nil error")
	}
	for _, x := range ts {
		if x.DType == "" || (x.DType == "float32") != (x.Data != nil) {
			t.Fatalf("tensor %q: dtype %q with Data %v", x.Name, x.DType, x.Data != nil)
		}
		n := 1
		for _, d := range x.Shape {
			if d < 0 {
				t.Fatalf("tensor %q: shape %v", x.Name, x.Shape)
			}
			if x.Data != nil {
				n *= d
			}
		}
		if x.Data != nil && len(x.Data) != n {
			t.Fatalf("tensor %q: shape %v, %d values", x.Name, x.Shape, len(x.Data))
		}
	}
}
