package dataset

import (
	"bytes"
	"errors"
	"io"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

func TestReadImages(t *testing.T) {
	pix := seq(2 * 3 * 4)
	raw := idxImages(2, 3, 4, pix)
	tests := []struct {
		name string
		in   []byte
		n    int
		pix  []byte
	}{
		{"raw", raw, 2, pix},
		{"gzip", gzipBytes(t, raw), 2, pix},
		{"two gzip members", append(gzipBytes(t, raw[:10]), gzipBytes(t, raw[10:])...), 2, pix},
		{"no images", idxImages(0, 28, 28, nil), 0, []byte{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, rows, cols, got, err := ReadImages(bytes.NewReader(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if n != tt.n || (n > 0 && (rows != 3 || cols != 4)) {
				t.Errorf("got %d images of %dx%d, want %d of 3x4", n, rows, cols, tt.n)
			}
			if !bytes.Equal(got, tt.pix) {
				t.Errorf("pixels = %v, want %v", got, tt.pix)
			}
		})
	}
}

func TestReadImagesErrors(t *testing.T) {
	valid := idxImages(2, 3, 4, seq(24))
	validGz := gzipBytes(t, valid)
	badCRC := bytes.Clone(validGz)
	badCRC[len(badCRC)-8] ^= 0xff // the CRC-32 in the gzip trailer
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "empty input"},
		{"short magic", []byte{0, 0, 8}, "truncated header"},
		{"not IDX", []byte("PK\x03\x04 a zip file"), "bad magic number 0x504b0304"},
		{"labels file", idxLabels([]byte{1, 2}), "mixed up"},
		{"float elements", header(0x00000d03, 1, 1, 1), "element type 0x0d"},
		{"two dimensions", header(0x00000802, 1, 1), "2 dimensions"},
		{"truncated dimensions", header(ImagesMagic, 2, 28), "truncated header"},
		{"zero rows", header(ImagesMagic, 1, 0, 28), "0x28 images"},
		{"huge cols", header(ImagesMagic, 1, 28, 5000), "28x5000 images"},
		{"max uint32 images", header(ImagesMagic, 0xffffffff, 28, 28), "more than the limit"},
		{"too many pixels", header(ImagesMagic, MaxRecords, MaxSide, MaxSide), "pixels"},
		{"truncated data", valid[:len(valid)-1], "only 23 bytes follow"},
		{"no data", valid[:16], "only 0 bytes follow"},
		{"trailing byte", append(bytes.Clone(valid), 0), "1 extra bytes"},
		{"bad gzip header", []byte{0x1f, 0x8b, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0}, "gzip"},
		{"truncated gzip", validGz[:len(validGz)/2], "truncated"},
		{"gzip without trailer", validGz[:len(validGz)-8], "truncated"},
		{"gzip bad checksum", badCRC, "checksum"},
		{"garbage after gzip", append(bytes.Clone(validGz), "junk"...), "trailing data after the gzip stream"},
		{"gzip of garbage", gzipBytes(t, []byte("hello, world")), "bad magic number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, rows, cols, pix, err := ReadImages(bytes.NewReader(tt.in))
			if err == nil {
				t.Fatalf("got %d images of %dx%d, want an error", n, rows, cols)
			}
			if !errors.Is(err, ErrFormat) {
				t.Errorf("error %q does not wrap ErrFormat", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			if n != 0 || rows != 0 || cols != 0 || pix != nil {
				t.Errorf("got %d, %d, %d, %d pixels with an error, want zero values", n, rows, cols, len(pix))
			}
		})
	}
}

func TestReadLabels(t *testing.T) {
	labels := []byte{5, 0, 4, 1, 9}
	raw := idxLabels(labels)
	for _, in := range [][]byte{raw, gzipBytes(t, raw)} {
		got, err := ReadLabels(bytes.NewReader(in))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, labels) {
			t.Errorf("labels = %v, want %v", got, labels)
		}
	}
}

func TestReadLabelsErrors(t *testing.T) {
	valid := idxLabels([]byte{1, 2, 3})
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "empty input"},
		{"images file", idxImages(1, 1, 1, []byte{0}), "mixed up"},
		{"truncated header", valid[:6], "truncated header"},
		{"too many labels", header(LabelsMagic, MaxRecords+1), "more than the limit"},
		{"truncated data", valid[:len(valid)-2], "only 1 bytes follow"},
		{"trailing bytes", append(bytes.Clone(valid), 1, 2, 3), "3 extra bytes"},
		{"truncated gzip", gzipBytes(t, valid)[:15], "truncated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			labels, err := ReadLabels(bytes.NewReader(tt.in))
			if err == nil {
				t.Fatalf("got labels %v, want an error", labels)
			}
			if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q: want ErrFormat and %q", err, tt.want)
			}
		})
	}
}

// TestReaderErrors checks that an error of the underlying reader is passed
// on, not mistaken for malformed data.
func TestReaderErrors(t *testing.T) {
	errDisk := errors.New("disk on fire")
	tests := []struct {
		name string
		in   io.Reader
	}{
		{"in header", iotest.ErrReader(errDisk)},
		{"in data", io.MultiReader(bytes.NewReader(header(ImagesMagic, 2, 2, 2)), iotest.ErrReader(errDisk))},
		{"in gzip data", io.MultiReader(bytes.NewReader(gzipBytes(t, idxImages(1, 2, 2, seq(4)))[:12]), iotest.ErrReader(errDisk))},
		{"after data", io.MultiReader(bytes.NewReader(idxImages(1, 2, 2, seq(4))), iotest.ErrReader(errDisk))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, _, _, err := ReadImages(tt.in)
			if !errors.Is(err, errDisk) || errors.Is(err, ErrFormat) {
				t.Errorf("error = %v, want the reader's error and not ErrFormat", err)
			}
		})
	}
}

// TestHugeClaimsAllocateLittle checks that a header claiming far more data
// than follows costs memory in proportion to the data, not to the claim.
func TestHugeClaimsAllocateLittle(t *testing.T) {
	tests := []struct {
		name string
		read func([]byte) error
		in   []byte
	}{
		{"images", func(b []byte) error {
			_, _, _, _, err := ReadImages(bytes.NewReader(b))
			return err
		}, append(header(ImagesMagic, 2_000_000, 32, 32), seq(100)...)},
		{"labels", func(b []byte) error {
			_, err := ReadLabels(bytes.NewReader(b))
			return err
		}, append(header(LabelsMagic, MaxRecords), seq(100)...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			err := tt.read(tt.in)
			runtime.ReadMemStats(&after)
			if err == nil || !strings.Contains(err.Error(), "only 100 bytes follow") {
				t.Fatalf("error = %v, want truncated data", err)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
				t.Errorf("allocated %d bytes for 100 bytes of data", alloc)
			}
		})
	}
}

// TestReadFileErrors checks that the file readers name the file and say
// what to do about it.
func TestReadFileErrors(t *testing.T) {
	dir := t.TempDir()
	badImages := writeFile(t, dir, "train-images-idx3-ubyte.gz", idxImages(3, 28, 28, seq(100)))
	badLabels := writeFile(t, dir, "train-labels-idx1-ubyte", []byte{0x1f, 0x8b, 8, 0, 0})
	missing := filepath.Join(dir, "t10k-images-idx3-ubyte.gz")

	_, _, _, _, err := ReadImagesFile(badImages)
	wantError(t, err, badImages, "truncated data", "delete it")
	_, err = ReadLabelsFile(badLabels)
	wantError(t, err, badLabels, "gzip", "delete it")
	_, _, _, _, err = ReadImagesFile(missing)
	wantError(t, err, missing, "no such file")
	_, err = ReadLabelsFile(missing)
	wantError(t, err, missing, "no such file")
}

// wantError fails t unless err is an error whose message has every one of
// wants.
func wantError(t *testing.T, err error, wants ...string) {
	t.Helper()
	if err == nil {
		t.Errorf("got no error, want one mentioning %q", wants)
		return
	}
	for _, want := range wants {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

// checkFuzzError checks what the readers promise on failure: every error
// from a bytes.Reader is a format error.
func checkFuzzError(t *testing.T, err error) {
	if !errors.Is(err, ErrFormat) {
		t.Fatalf("error %q does not wrap ErrFormat", err)
	}
}

func FuzzReadImages(f *testing.F) {
	valid := idxImages(2, 3, 2, seq(12))
	f.Add(valid)
	f.Add(gzipBytes(f, valid))
	f.Add(valid[:len(valid)-1])
	f.Add(append(bytes.Clone(valid), 7))
	f.Add(idxLabels([]byte{1}))
	f.Add(header(ImagesMagic, MaxRecords, MaxSide, MaxSide))
	f.Fuzz(func(t *testing.T, data []byte) {
		n, rows, cols, pix, err := ReadImages(bytes.NewReader(data))
		if err != nil {
			checkFuzzError(t, err)
			return
		}
		if n < 0 || n > MaxRecords || rows < 1 || rows > MaxSide || cols < 1 || cols > MaxSide {
			t.Fatalf("accepted %d images of %dx%d", n, rows, cols)
		}
		if len(pix) != n*rows*cols {
			t.Fatalf("got %d pixels for %d images of %dx%d", len(pix), n, rows, cols)
		}
		// What was read, written back raw, reads the same.
		n2, rows2, cols2, pix2, err := ReadImages(bytes.NewReader(idxImages(n, rows, cols, pix)))
		if err != nil || n2 != n || rows2 != rows || cols2 != cols || !bytes.Equal(pix2, pix) {
			t.Fatalf("round trip: got %d images of %dx%d, error %v", n2, rows2, cols2, err)
		}
	})
}

func FuzzReadLabels(f *testing.F) {
	valid := idxLabels([]byte{5, 0, 4, 1, 9})
	f.Add(valid)
	f.Add(gzipBytes(f, valid))
	f.Add(valid[:len(valid)-1])
	f.Add(append(bytes.Clone(valid), 7))
	f.Add(idxImages(1, 1, 1, []byte{0}))
	f.Add(header(LabelsMagic, MaxRecords))
	f.Fuzz(func(t *testing.T, data []byte) {
		labels, err := ReadLabels(bytes.NewReader(data))
		if err != nil {
			checkFuzzError(t, err)
			return
		}
		if len(labels) > MaxRecords {
			t.Fatalf("accepted %d labels", len(labels))
		}
		got, err := ReadLabels(bytes.NewReader(idxLabels(labels)))
		if err != nil || !slices.Equal(got, labels) {
			t.Fatalf("round trip: got %d labels, error %v", len(got), err)
		}
	})
}
