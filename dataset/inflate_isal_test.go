//go:build isal && cgo

package dataset

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"testing/iotest"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/gzip"
)

// readVia returns the content of in, read through decompress with ISA-L
// (fast) or with klauspost/compress alone, and the error that ended the
// reading, both through a reader that hands out one byte at a time where
// oneByte, so that every member, header and trailer is split across reads.
func readVia(in []byte, fast, oneByte bool) ([]byte, error) {
	var r io.Reader = bytes.NewReader(in)
	if oneByte {
		r = iotest.OneByteReader(r)
	}
	body := newBody
	if !fast {
		body = func(*bufio.Reader) memberBody { return nil }
	}
	d, _, err := decompressWith(r, body)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(d)
}

// errorKind sorts a decompression error as readError does.
func errorKind(err error) string {
	var corrupt flate.CorruptInputError
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "truncated"
	case errors.Is(err, gzip.ErrChecksum):
		return "checksum"
	case errors.Is(err, gzip.ErrHeader), errors.As(err, &corrupt):
		return "corrupt"
	case errors.Is(err, ErrFormat):
		return err.Error()
	}
	return "other: " + err.Error()
}

// checkSame fails t unless ISA-L and klauspost/compress give in the same
// content, or both an error: of the same kind where kind, else each a
// format error. (Data that is both corrupt and cut short can be either,
// depending on how far ahead a decoder reads: ISA-L reads 8 bytes ahead.)
func checkSame(t *testing.T, name string, in []byte, kind bool) {
	t.Helper()
	want, wantErr := readVia(in, false, false)
	for _, oneByte := range []bool{false, true} {
		got, err := readVia(in, true, oneByte)
		same := errorKind(err) == errorKind(wantErr)
		if !kind {
			same = (err == nil) == (wantErr == nil) && (err == nil || errors.Is(readError(err, "data"), ErrFormat) && errors.Is(readError(wantErr, "data"), ErrFormat))
		}
		if !same {
			t.Errorf("%s (one byte a read: %v): ISA-L: %v, klauspost: %v", name, oneByte, err, wantErr)
			continue
		}
		if wantErr == nil && !bytes.Equal(got, want) {
			t.Errorf("%s (one byte a read: %v): ISA-L gave %d bytes, klauspost %d, not the same", name, oneByte, len(got), len(want))
		}
	}
}

// TestISALMatchesGo checks that the ISA-L build reads every gzip input,
// whole, cut short, damaged or followed by junk, as the pure-Go decoder
// does: the same bytes, or the same kind of error.
func TestISALMatchesGo(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	text := make([]byte, 200_000)
	for i := range text {
		text[i] = "abcdefgh  \n"[rng.IntN(11)] // compressible, with long matches
	}
	noise := make([]byte, 70_000)
	for i := range noise {
		noise[i] = byte(rng.Uint32())
	}
	whole := gzipBytes(t, text)
	inputs := map[string][]byte{
		"text":              whole,
		"noise (stored)":    gzipBytes(t, noise),
		"empty":             gzipBytes(t, nil),
		"three members":     append(append(gzipBytes(t, text[:1000]), gzipBytes(t, nil)...), gzipBytes(t, noise)...),
		"junk after":        append(bytes.Clone(whole), "junk"...),
		"half a magic":      append(bytes.Clone(whole), 0x1f),
		"header only":       whole[:10],
		"second header cut": append(bytes.Clone(whole), whole[:5]...),
	}
	for i := 1; i <= 8; i++ {
		inputs["trailer cut to "+string(rune('0'+8-i))] = whole[:len(whole)-i]
	}
	for _, at := range []int{11, 12, 100, len(whole) / 2, len(whole) - 9, len(whole) - 8, len(whole) - 3} {
		for _, bit := range []byte{1, 0x80} {
			b := bytes.Clone(whole)
			b[at] ^= bit
			inputs["bit flipped at "+itoa(at)+"^"+itoa(int(bit))] = b
		}
		inputs["cut at "+itoa(at)] = whole[:at]
	}
	if realMNIST != "" {
		b, err := os.ReadFile(filepath.Join(realMNIST, "t10k-images-idx3-ubyte.gz"))
		if err != nil {
			t.Fatal(err)
		}
		inputs["MNIST's test images"] = b
		inputs["MNIST's test images, cut"] = b[:len(b)*2/3]
	}
	for name, in := range inputs {
		checkSame(t, name, in, true)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// FuzzISALMatchesGo checks ISA-L against klauspost/compress on any input:
// the same bytes, or an error from both.
func FuzzISALMatchesGo(f *testing.F) {
	f.Add(gzipBytes(f, []byte("hello, hello, hello, world")))
	f.Add(append(gzipBytes(f, idxLabels([]byte{1, 2, 3})), gzipBytes(f, nil)...))
	f.Fuzz(func(t *testing.T, in []byte) {
		checkSame(t, "input", in, false)
	})
}
