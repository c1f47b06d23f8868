package dataset

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/latent-ai/latent/internal/mnisttest"
)

// realMNIST is the folder of the real, read-only MNIST files, found by
// TestMain, or "" if it was not found. Tests never write into it.
var realMNIST string

func TestMain(m *testing.M) {
	realMNIST = mnisttest.Find()
	// The examples read the data the way a program does, through Dir,
	// which honours $LATENT_DATA.
	if realMNIST != "" && os.Getenv(EnvData) == "" {
		os.Setenv(EnvData, realMNIST)
	}
	os.Exit(m.Run())
}

// mnistDir returns the real MNIST folder. Without it the test is skipped,
// except under CI, where the data must be there.
func mnistDir(t testing.TB) string {
	t.Helper()
	if realMNIST == "" {
		msg := "real MNIST not found: set $" + EnvData + " or put shared/datasets/mnist beside the repository"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return realMNIST
}

// header returns an IDX header with the given magic number and dimensions.
func header(magic uint32, dims ...uint32) []byte {
	b := binary.BigEndian.AppendUint32(nil, magic)
	for _, d := range dims {
		b = binary.BigEndian.AppendUint32(b, d)
	}
	return b
}

// idxImages returns an IDX images file of n images of rows x cols pixels.
func idxImages(n, rows, cols int, pix []byte) []byte {
	return append(header(ImagesMagic, uint32(n), uint32(rows), uint32(cols)), pix...)
}

// idxLabels returns an IDX labels file holding labels.
func idxLabels(labels []byte) []byte {
	return append(header(LabelsMagic, uint32(len(labels))), labels...)
}

// gzipBytes returns b gzip-compressed.
func gzipBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// seq returns n bytes 0, 1, 2, ... modulo 256.
func seq(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

// writeFile writes b to dir/name and returns the path.
func writeFile(t testing.TB, dir, name string, b []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// copyFile copies the file src to the folder dir.
func copyFile(t testing.TB, src, dir string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(filepath.Join(dir, filepath.Base(src)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// dirNames returns the names in dir, sorted.
func dirNames(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}
