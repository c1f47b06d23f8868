package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/latent-ai/latent/checkpoint"
	"github.com/latent-ai/latent/codetable"
	"github.com/latent-ai/latent/dataset"
	"github.com/latent-ai/latent/npyarray"
	"github.com/parquet-go/parquet-go"
)

// writeMNISTPNGs writes the first n images of each split of MNIST as a PNG
// tree in ImageFolder layout: ROOT/train/LABEL/00042.png and
// ROOT/test/LABEL/00042.png, and a few files no reader can use.
func writeMNISTPNGs(t *testing.T, data, root string, n map[string]int) {
	t.Helper()
	for split, k := range n {
		s, err := dataset.Load(dataset.MNIST, data, split)
		if err != nil {
			t.Fatal(err)
		}
		for i := range k {
			img := image.NewGray(image.Rect(0, 0, 28, 28))
			for j, v := range s.Image(i) {
				img.Pix[j] = uint8(v*255 + 0.5)
			}
			var b bytes.Buffer
			png.Encode(&b, img)
			p := filepath.Join(root, split, fmt.Sprint(s.Labels[i]), fmt.Sprintf("%05d.png", i))
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	os.WriteFile(filepath.Join(root, "train", "3", "broken.png"), []byte("\x89PNG\r\n\x1a\nnot really"), 0o644)
	os.WriteFile(filepath.Join(root, "train", "5", "empty.jpg"), nil, 0o644)
}

// TestOwnImages trains on MNIST written as PNG files, with two bad files
// among them, and checks that the run records its source and splits, that
// export and report find the data again without --data, and that encoding
// the PNG test images gives the codes of the IDX test images, image by
// image and bit for bit.
func TestOwnImages(t *testing.T) {
	ortNeedRuntime(t)
	data := ortMNISTDir(t)
	root := filepath.Join(t.TempDir(), "digits")
	writeMNISTPNGs(t, data, root, map[string]int{dataset.Train: 640, dataset.Test: 200})
	dir := filepath.Join(t.TempDir(), "run")

	code, stdout, stderr := latentOut(t, "train", "--model", "conv", "--data", root, "--epochs", "1", "--out", dir, "--quiet")
	if code != 0 {
		t.Fatalf("train on PNGs: exit %d: %s", code, stderr)
	}
	for _, w := range []string{"skipped " + filepath.Join(root, "train", "3", "broken.png"), "empty.jpg", "skipped 2 unreadable files of 642 in the train split"} {
		if !strings.Contains(stderr, w) {
			t.Errorf("train's log lacks %q:\n%s", w, stderr)
		}
	}
	t.Logf("%s%s", stdout, stderr)
	m, err := checkpoint.Load(filepath.Join(dir, modelFile))
	if err != nil {
		t.Fatal(err)
	}
	if m.Meta.Source == nil || m.Meta.Source.Path != root || m.Meta.Source.Format != dataset.FormatFolder || m.Meta.Dataset != "digits" {
		t.Fatalf("recorded source %+v, data set %q", m.Meta.Source, m.Meta.Dataset)
	}
	var splits map[string][]string
	b, err := os.ReadFile(filepath.Join(dir, "splits.json"))
	if err != nil || json.Unmarshal(b, &splits) != nil {
		t.Fatalf("splits.json: %v", err)
	}
	if len(splits["train"]) != 640 || len(splits["test"]) != 200 || !strings.HasPrefix(splits["test"][0], "test"+string(filepath.Separator)) {
		t.Fatalf("splits: %d train, %d test, first test %q", len(splits["train"]), len(splits["test"]), splits["test"][0])
	}

	for _, args := range [][]string{
		{"export", dir, "--quiet"}, // the recorded source, without --data
		{"encode", dir, "--split", "test", "--out", filepath.Join(dir, "png.npy"), "--quiet"},
		{"encode", dir, "--data", data, "--split", "test", "--out", filepath.Join(dir, "idx.npy"), "--quiet"},
		{"encode", dir, "--split", "test", "--out", filepath.Join(dir, "png.parquet"), "--quiet"},
		{"encode", dir, "--split", "test", "--out", filepath.Join(dir, "png.csv"), "--quiet"},
		{"report", dir, "--quiet"},
	} {
		if code, stderr := ortLatent(t, args...); code != 0 {
			t.Fatalf("latent %s: exit %d: %s", strings.Join(args, " "), code, stderr)
		}
	}
	pngCodes, pshape, err := npyarray.ReadFile(filepath.Join(dir, "png.npy"))
	if err != nil {
		t.Fatal(err)
	}
	idxCodes, _, err := npyarray.ReadFile(filepath.Join(dir, "idx.npy"))
	if err != nil {
		t.Fatal(err)
	}
	if pshape[0] != 200 {
		t.Fatalf("%d PNG test codes, want 200", pshape[0])
	}
	b10 := pshape[1]
	for j, id := range splits["test"] {
		i, _ := strconv.Atoi(strings.TrimSuffix(filepath.Base(id), ".png"))
		if !slices.Equal(pngCodes[j*b10:(j+1)*b10], idxCodes[i*b10:(i+1)*b10]) {
			t.Fatalf("%s: code %v, the IDX test image %d's %v", id, pngCodes[j*b10:(j+1)*b10], i, idxCodes[i*b10:(i+1)*b10])
		}
	}
	// The Parquet table: the same codes, with the images' paths and labels.
	pq, err := os.ReadFile(filepath.Join(dir, "png.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	table, err := codetable.ReadParquet(bytes.NewReader(pq), int64(len(pq)))
	if err != nil {
		t.Fatal(err)
	}
	if len(table) != 200 {
		t.Fatalf("%d Parquet rows, want 200", len(table))
	}
	for j, r := range table {
		label, _ := strconv.Atoi(filepath.Base(filepath.Dir(r.ID)))
		if r.ID != splits["test"][j] || r.Label != label || !slices.Equal(r.Code, pngCodes[j*b10:(j+1)*b10]) {
			t.Fatalf("Parquet row %d: %+v; want %s, label %d and the .npy's code", j, r, splits["test"][j], label)
		}
	}
	if csvData, err := os.ReadFile(filepath.Join(dir, "png.csv")); err != nil || !strings.HasPrefix(string(csvData), "id,label,c0,c1,") {
		t.Errorf("the CSV table: %v, %.40q", err, csvData)
	}
	html, err := os.ReadFile(filepath.Join(dir, "report", "index.html"))
	if err != nil || !strings.Contains(string(html), "digits") {
		t.Errorf("report: %v", err)
	}
}

// TestParquetTrainsAndEncodes writes MNIST images as a Parquet file in the
// Hugging Face image layout and trains, exports and encodes from it.
func TestParquetTrainsAndEncodes(t *testing.T) {
	ortNeedRuntime(t)
	s, err := dataset.Load(dataset.MNIST, ortMNISTDir(t), dataset.Train)
	if err != nil {
		t.Fatal(err)
	}
	type hfImage struct {
		Bytes []byte `parquet:"bytes"`
		Path  string `parquet:"path"`
	}
	type hfRow struct {
		Image hfImage `parquet:"image"`
		Label int64   `parquet:"label"`
	}
	var rows []hfRow
	for i := range 400 {
		img := image.NewGray(image.Rect(0, 0, 28, 28))
		for j, v := range s.Image(i) {
			img.Pix[j] = uint8(v*255 + 0.5)
		}
		var b bytes.Buffer
		png.Encode(&b, img)
		rows = append(rows, hfRow{Image: hfImage{b.Bytes(), fmt.Sprintf("train/%05d.png", i)}, Label: int64(s.Labels[i])})
	}
	src := filepath.Join(t.TempDir(), "mnist-train.parquet")
	if err := parquet.WriteFile(src, rows); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "run")
	out := filepath.Join(dir, "codes.parquet")
	for _, args := range [][]string{
		{"train", "--model", "classic", "--data", src, "--epochs", "1", "--out", dir, "--quiet"},
		{"export", dir, "--quiet"},
		{"encode", dir, "--split", "all", "--out", out, "--quiet"},
	} {
		if code, stderr := ortLatent(t, args...); code != 0 {
			t.Fatalf("latent %s: exit %d: %s", strings.Join(args, " "), code, stderr)
		}
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	table, err := codetable.ReadParquet(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if len(table) != 400 || !strings.HasPrefix(table[0].ID, "train/") || len(table[0].Code) != 10 {
		t.Fatalf("%d rows, the first %+v", len(table), table[0])
	}
	for _, r := range table {
		var i int
		fmt.Sscanf(r.ID, "train/%05d.png", &i)
		if r.Label != int(s.Labels[i]) {
			t.Fatalf("%s: label %d, MNIST's %d", r.ID, r.Label, s.Labels[i])
		}
	}
}
