package dataset

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/latent-ai/latent/npyarray"
	"github.com/parquet-go/parquet-go"
)

// writePNG writes the 28×28 image pix (values in [0,1], bytes/255) as a
// grayscale PNG at path.
func writePNG(t *testing.T, path string, pix []float32) {
	t.Helper()
	img := image.NewGray(image.Rect(0, 0, Side, Side))
	for i, v := range pix {
		img.Pix[i] = uint8(v*255 + 0.5)
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestOpenImageFolderMatchesIDX writes MNIST images as a PNG tree in
// ImageFolder layout with train/ and test/, and checks that Open gives
// back every image bit for bit, with its label, and the ten classes.
func TestOpenImageFolderMatchesIDX(t *testing.T) {
	dir := mnistDir(t)
	root := t.TempDir()
	sets := map[string]*Set{}
	for split, n := range map[string]int{Train: 300, Test: 100} {
		s, err := Load(MNIST, dir, split)
		if err != nil {
			t.Fatal(err)
		}
		sets[split] = s
		for i := range n {
			writePNG(t, filepath.Join(root, split, fmt.Sprint(s.Labels[i]), fmt.Sprintf("%05d.png", i)), s.Image(i))
		}
	}
	got, err := Open(root, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Format != FormatFolder || !slices.Equal(got.Classes, ClassNames(MNIST)) || len(got.Skipped) != 0 {
		t.Fatalf("format %q, classes %v, skipped %v", got.Format, got.Classes, got.Skipped)
	}
	for split, s := range map[string]*Set{Train: got.Train, Test: got.Test} {
		if want := map[string]int{Train: 300, Test: 100}[split]; s.N != want || s.Split != split {
			t.Fatalf("%s: %d images, split %q", split, s.N, s.Split)
		}
		for j, id := range s.IDs {
			i, _ := strconv.Atoi(strings.TrimSuffix(filepath.Base(id), ".png"))
			if !slices.Equal(s.Image(j), sets[split].Image(i)) || s.Labels[j] != sets[split].Labels[i] {
				t.Fatalf("%s %s: not the IDX image %d or its label", split, id, i)
			}
			if !strings.HasPrefix(id, split+string(filepath.Separator)) {
				t.Fatalf("ID %q does not name its folder", id)
			}
		}
	}
}

// TestOpenHostileFiles mixes good pictures with a corrupt one, a truncated
// one, an empty one, text, a GIF and a decompression bomb: Open skips and
// names each, and with Strict refuses the folder.
func TestOpenHostileFiles(t *testing.T) {
	root := t.TempDir()
	good := make([]float32, Side*Side)
	for i := range good {
		good[i] = float32(i%255) / 255
	}
	for i := range 5 {
		writePNG(t, filepath.Join(root, fmt.Sprintf("good%d.png", i)), good)
	}
	pngData, _ := os.ReadFile(filepath.Join(root, "good0.png"))
	bomb := slices.Clone(pngData)
	copy(bomb[16:24], []byte{0, 1, 0x86, 0xa0, 0, 1, 0x86, 0xa0})
	binary.BigEndian.PutUint32(bomb[29:33], crc32.ChecksumIEEE(bomb[12:29]))
	bad := map[string][]byte{
		"corrupt.png":   append(slices.Clone(pngData[:40]), bytes.Repeat([]byte{0x5a}, 200)...),
		"truncated.png": pngData[:len(pngData)/2],
		"empty.png":     nil,
		"notes.jpg":     []byte("not a picture at all"),
		"anim.png":      []byte("GIF89a\x01\x00\x01\x00"),
		"bomb.png":      bomb,
	}
	for name, data := range bad {
		if err := os.WriteFile(filepath.Join(root, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(root, "readme.txt"), []byte("ignored: not a picture's name"), 0o644)
	got, err := Open(root, OpenOptions{TestFraction: 0.2})
	if err != nil {
		t.Fatal(err)
	}
	if got.Train.N+got.Test.N != 5 || got.Test.N != 1 {
		t.Errorf("%d + %d good images, want 4 + 1", got.Train.N, got.Test.N)
	}
	named := map[string]string{}
	for _, s := range got.Skipped {
		named[filepath.Base(s.Path)] = s.Err.Error()
	}
	for name := range bad {
		if _, ok := named[name]; !ok {
			t.Errorf("%s was not skipped (skipped: %v)", name, named)
		}
	}
	if !strings.Contains(named["bomb.png"], "100000×100000") {
		t.Errorf("the bomb was skipped for %q, not for its size", named["bomb.png"])
	}
	if len(got.Skipped) != len(bad) {
		t.Errorf("%d skipped, want %d", len(got.Skipped), len(bad))
	}
	if _, err := Open(root, OpenOptions{Strict: true}); err == nil || !strings.Contains(err.Error(), "--strict") {
		t.Errorf("strict: %v", err)
	}
}

// TestOpenNPY reads uint8 N×H×W images with labels and float32 N×C×H×W
// colour images, and refuses wrong shapes and values.
func TestOpenNPY(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, dtype npyarray.DType, shape []int, values []byte) string {
		var b bytes.Buffer
		if err := npyarray.WriteHeader(&b, dtype, shape); err != nil {
			t.Fatal(err)
		}
		b.Write(values)
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const n = 50
	pix := make([]byte, n*Side*Side)
	for i := range pix {
		pix[i] = byte(i * 7)
	}
	labels := make([]byte, n)
	for i := range labels {
		labels[i] = byte(i % 3)
	}
	images := write("digits.npy", npyarray.Uint8, []int{n, Side, Side}, pix)
	write("digits-labels.npy", npyarray.Uint8, []int{n}, labels)
	got, err := Open(images, OpenOptions{Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	if got.Format != FormatNPY || got.Train.N != 45 || got.Test.N != 5 {
		t.Fatalf("format %s, %d + %d images, want 45 + 5", got.Format, got.Train.N, got.Test.N)
	}
	for j, id := range got.Test.IDs {
		i, _ := strconv.Atoi(id)
		if got.Test.Labels[j] != labels[i] || got.Test.Image(j)[3] != float32(pix[i*Side*Side+3])/255 {
			t.Fatalf("test image %s: label or pixels differ from the array's", id)
		}
	}
	again, _ := Open(images, OpenOptions{Seed: 7})
	other, _ := Open(images, OpenOptions{Seed: 8})
	if !slices.Equal(again.Test.IDs, got.Test.IDs) || slices.Equal(other.Test.IDs, got.Test.IDs) {
		t.Errorf("held-out split: seed 7 gave %v then %v, seed 8 %v", got.Test.IDs, again.Test.IDs, other.Test.IDs)
	}

	colour := make([]byte, 0, 4*3*8*8*4)
	for i := range 4 * 3 * 8 * 8 {
		colour = binary.LittleEndian.AppendUint32(colour, math.Float32bits(float32(i%10)/10))
	}
	cpath := write("colour.npy", npyarray.Float32, []int{4, 3, 8, 8}, colour)
	c, err := Open(cpath, OpenOptions{Input: []int{3, 8, 8}, TestFraction: 0.25})
	if err != nil {
		t.Fatal(err)
	}
	if c.Train.Channels != 3 || len(c.Train.Image(0)) != 3*8*8 || c.Test.N != 1 {
		t.Errorf("colour: %d channels, image of %d values, %d test images", c.Train.Channels, len(c.Train.Image(0)), c.Test.N)
	}
	for _, tc := range []struct {
		o    OpenOptions
		want string
	}{
		{OpenOptions{Input: []int{1, 8, 8}}, "want N×8×8"},
		{OpenOptions{Input: []int{2, 8, 8}}, "1 or 3 channels"},
		{OpenOptions{Input: []int{3, 8, 8}, TestFraction: 1.5}, "test fraction"},
	} {
		if _, err := Open(cpath, tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.o, err, tc.want)
		}
	}
}

// TestOpenGlobAndColour reads a glob of colour pictures, unlabelled.
func TestOpenGlobAndColour(t *testing.T) {
	dir := t.TempDir()
	for i := range 4 {
		img := image.NewNRGBA(image.Rect(0, 0, 8, 8))
		for j := range 64 {
			img.Set(j%8, j/8, color.NRGBA{uint8(60 * i), 200, 0, 255})
		}
		var b bytes.Buffer
		png.Encode(&b, img)
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("p%d.png", i)), b.Bytes(), 0o644)
	}
	got, err := Open(filepath.Join(dir, "p*.png"), OpenOptions{Input: []int{3, 4, 4}, TestFraction: 0.25})
	if err != nil {
		t.Fatal(err)
	}
	if got.Format != FormatGlob || got.Classes != nil || got.Train.N != 3 || got.Test.N != 1 {
		t.Fatalf("format %s, classes %v, %d + %d", got.Format, got.Classes, got.Train.N, got.Test.N)
	}
	img := got.Train.Image(0)
	if img[16] != float32(200)/255 || img[32] != 0 { // green plane all 200, blue 0
		t.Errorf("colour planes: green %v, blue %v", img[16], img[32])
	}
	if _, err := Open(filepath.Join(dir, "none*.png"), OpenOptions{}); err == nil || !strings.Contains(err.Error(), "no file matches") {
		t.Errorf("an empty glob: %v", err)
	}
}

// TestOpenParquet writes MNIST images as PNG bytes in a Parquet file of the
// Hugging Face layout, with one damaged row, and reads them back.
func TestOpenParquet(t *testing.T) {
	s, err := Load(MNIST, mnistDir(t), Test)
	if err != nil {
		t.Fatal(err)
	}
	const n = 60
	rows := make([]hfRow, 0, n+1)
	for i := range n {
		img := image.NewGray(image.Rect(0, 0, Side, Side))
		for j, v := range s.Image(i) {
			img.Pix[j] = uint8(v*255 + 0.5)
		}
		var b bytes.Buffer
		png.Encode(&b, img)
		var r hfRow
		r.Image.Bytes, r.Image.Path = b.Bytes(), fmt.Sprintf("digit-%d.png", i)
		l := int64(s.Labels[i])
		r.Label = &l
		rows = append(rows, r)
	}
	var bad hfRow
	bad.Image.Bytes, bad.Image.Path = []byte("\x89PNG\r\n\x1a\ncut"), "broken.png"
	rows = append(rows, bad)
	path := filepath.Join(t.TempDir(), "mnist.parquet")
	if err := parquet.WriteFile(path, rows); err != nil {
		t.Fatal(err)
	}
	got, err := Open(path, OpenOptions{TestFraction: 0.25, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	if got.Format != FormatParquet || got.Train.N+got.Test.N != n || got.Test.N != 15 || len(got.Skipped) != 1 || !strings.HasSuffix(got.Skipped[0].Path, "broken.png") {
		t.Fatalf("format %s, %d + %d rows, skipped %v", got.Format, got.Train.N, got.Test.N, got.Skipped)
	}
	for j, id := range got.Test.IDs {
		var i int
		fmt.Sscanf(id, "digit-%d.png", &i)
		if !slices.Equal(got.Test.Image(j), s.Image(i)) || got.Test.Labels[j] != s.Labels[i] {
			t.Fatalf("%s: not MNIST test image %d or its label", id, i)
		}
	}
	notHF := filepath.Join(t.TempDir(), "other.parquet")
	type other struct {
		X int64 `parquet:"x"`
	}
	parquet.WriteFile(notHF, []other{{1}})
	if _, err := Open(notHF, OpenOptions{}); err == nil || !strings.Contains(err.Error(), "Hugging Face image layout") {
		t.Errorf("a Parquet file of another layout: %v", err)
	}
	os.WriteFile(notHF, []byte("PAR1 not really"), 0o644)
	if _, err := Open(notHF, OpenOptions{}); err == nil || !strings.Contains(err.Error(), "not a readable Parquet file") {
		t.Errorf("a damaged Parquet file: %v", err)
	}
}
