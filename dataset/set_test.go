package dataset

import (
	"bytes"
	"context"
	"encoding/hex"
	"github.com/latent-ai/latent/internal/pixel"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestLoadMNIST(t *testing.T) {
	dir := mnistDir(t)
	tests := []struct {
		split       string
		n           int
		firstLabels []uint8
		counts      [10]int // images of each digit
	}{
		{Train, 60000, []uint8{5, 0, 4, 1, 9, 2, 1, 3, 1, 4},
			[10]int{5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949}},
		{Test, 10000, []uint8{7, 2, 1, 0, 4, 1, 4, 9, 5, 9},
			[10]int{980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009}},
	}
	for _, tt := range tests {
		t.Run(tt.split, func(t *testing.T) {
			s, err := Load(MNIST, dir, tt.split)
			if err != nil {
				t.Fatal(err)
			}
			if s.Name != MNIST || s.Split != tt.split {
				t.Errorf("Name, Split = %q, %q, want %q, %q", s.Name, s.Split, MNIST, tt.split)
			}
			if s.N != tt.n || s.Rows != 28 || s.Cols != 28 {
				t.Fatalf("got %d images of %dx%d, want %d of 28x28", s.N, s.Rows, s.Cols, tt.n)
			}
			if len(s.Pixels) != tt.n*28*28 || len(s.Labels) != tt.n {
				t.Fatalf("got %d pixels and %d labels, want %d and %d", len(s.Pixels), len(s.Labels), tt.n*28*28, tt.n)
			}
			if !slices.Equal(s.Labels[:10], tt.firstLabels) {
				t.Errorf("first labels = %v, want %v", s.Labels[:10], tt.firstLabels)
			}
			var counts [10]int
			for _, l := range s.Labels {
				counts[l]++
			}
			if counts != tt.counts {
				t.Errorf("images of each digit = %v, want %v", counts, tt.counts)
			}
			var zeros, ones int
			for _, v := range s.Pixels {
				switch v {
				case 0:
					zeros++
				case 255:
					ones++
				}
			}
			// MNIST is mostly background, with saturated strokes.
			if zeros < len(s.Pixels)/2 || ones == 0 {
				t.Errorf("%d zeros and %d saturated among %d pixels: not MNIST-like", zeros, ones, len(s.Pixels))
			}
		})
	}
}

// TestLoadMatchesBytes checks the pixels against the raw bytes, and their
// conversion to float32 by Image and Floats: each byte divided by 255.
func TestLoadMatchesBytes(t *testing.T) {
	dir := mnistDir(t)
	s, err := Load(MNIST, dir, Test)
	if err != nil {
		t.Fatal(err)
	}
	n, rows, cols, pix, err := ReadImagesFile(filepath.Join(dir, "t10k-images-idx3-ubyte.gz"))
	if err != nil {
		t.Fatal(err)
	}
	if n != s.N || rows != s.Rows || cols != s.Cols || !slices.Equal(pix, s.Pixels) {
		t.Fatalf("ReadImagesFile: %d images of %dx%d, Load: %d of %dx%d, or other pixels", n, rows, cols, s.N, s.Rows, s.Cols)
	}
	floats := s.Floats(nil, 2, 3)
	if len(floats) != 3*784 {
		t.Fatalf("Floats(nil, 2, 3) has %d values, want %d", len(floats), 3*784)
	}
	for i, v := range s.Image(3) {
		if b := pix[3*784+i]; v != float32(b)/255 || floats[784+i] != v {
			t.Fatalf("image 3 pixel %d = %v (Floats: %v), want %d/255", i, v, floats[784+i], b)
		}
	}
	reused := s.Floats(floats, 0, 2)
	if &reused[0] != &floats[0] {
		t.Error("Floats did not reuse a large enough buffer")
	}
	back := pixel.ToUint8(make([]uint8, len(reused)), reused)
	if !slices.Equal(back, pix[:2*784]) {
		t.Error("ToUint8 does not give back the bytes of ToFloat32")
	}
}

func TestLoadFashionMNIST(t *testing.T) {
	dir := DefaultFashionDir
	if _, err := os.Stat(filepath.Join(dir, "train-images-idx3-ubyte.gz")); err != nil {
		t.Skip("Fashion-MNIST is not installed: apt-get install dataset-fashion-mnist")
	}
	for _, tt := range []struct {
		split string
		n     int
	}{{Train, 60000}, {Test, 10000}} {
		s, err := Load(FashionMNIST, dir, tt.split)
		if err != nil {
			t.Fatal(err)
		}
		if s.N != tt.n || s.Rows != 28 || s.Cols != 28 || len(s.Pixels) != tt.n*784 {
			t.Fatalf("%s: got %d images of %dx%d, want %d of 28x28", tt.split, s.N, s.Rows, s.Cols, tt.n)
		}
		// Fashion-MNIST is balanced: a tenth of each split per class.
		var counts [10]int
		for _, l := range s.Labels {
			counts[l]++
		}
		for label, c := range counts {
			if c != tt.n/10 {
				t.Errorf("%s: %d images of class %d, want %d", tt.split, c, label, tt.n/10)
			}
		}
	}
	if err := Verify(FashionMNIST, dir); err != nil {
		t.Error(err)
	}
}

// TestLoadFileForms checks that compression is detected from the content,
// not the name, and that names without .gz are found.
func TestLoadFileForms(t *testing.T) {
	images := idxImages(2, 28, 28, seq(2*784))
	labels := idxLabels([]byte{3, 9})
	tests := []struct {
		name  string
		files map[string][]byte
	}{
		{"gzip", map[string][]byte{
			"t10k-images-idx3-ubyte.gz": gzipBytes(t, images),
			"t10k-labels-idx1-ubyte.gz": gzipBytes(t, labels),
		}},
		{"raw", map[string][]byte{
			"t10k-images-idx3-ubyte": images,
			"t10k-labels-idx1-ubyte": labels,
		}},
		{"raw named .gz, gzip named raw", map[string][]byte{
			"t10k-images-idx3-ubyte.gz": images,
			"t10k-labels-idx1-ubyte":    gzipBytes(t, labels),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, b := range tt.files {
				writeFile(t, dir, name, b)
			}
			s, err := Load(MNIST, dir, Test)
			if err != nil {
				t.Fatal(err)
			}
			if s.N != 2 || !slices.Equal(s.Labels, []uint8{3, 9}) {
				t.Fatalf("got %d images, labels %v", s.N, s.Labels)
			}
			if got, want := s.Image(1)[5], float32((784+5)%256)/255; got != want {
				t.Errorf("Image(1)[5] = %v, want %v", got, want)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	images := idxImages(2, 28, 28, seq(2*784))
	labels := idxLabels([]byte{3, 9})
	const (
		imagesName = "train-images-idx3-ubyte.gz"
		labelsName = "train-labels-idx1-ubyte.gz"
	)
	tests := []struct {
		name   string
		images []byte // nil: no file
		labels []byte
		split  string
		wants  []string // "DIR" and "IMAGES" and "LABELS" stand for paths
	}{
		{"no files", nil, nil, Train, []string{
			"train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz missing in folder DIR",
			"t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", "download"}},
		{"no labels", images, nil, Train, []string{"train-labels-idx1-ubyte.gz missing in folder DIR"}},
		{"unknown split", images, labels, "validation", []string{`unknown split "validation"`}},
		{"count mismatch", images, idxLabels([]byte{1, 2, 3}), Train,
			[]string{"IMAGES holds 2 images but LABELS holds 3 labels", "delete both"}},
		{"label out of range", images, idxLabels([]byte{1, 10}), Train,
			[]string{"LABELS: label 1 is 10, want 0-9", "delete it"}},
		{"no labels in file", images, idxLabels(nil), Train, []string{"LABELS: no labels"}},
		{"27x28 images", idxImages(2, 27, 28, seq(2*27*28)), labels, Train,
			[]string{"IMAGES: images are 27x28, want 28x28"}},
		{"images swapped with labels", labels, images, Train, []string{"LABELS", "mixed up", "delete it"}},
		{"truncated images", images[:1000], labels, Train, []string{"IMAGES", "only 984 bytes follow", "delete it"}},
		{"trailing image bytes", append(bytes.Clone(images), 1, 2), labels, Train,
			[]string{"IMAGES", "2 extra bytes", "delete it"}},
		{"bad gzip", []byte{0x1f, 0x8b, 8, 0}, labels, Train, []string{"IMAGES", "gzip", "delete it"}},
		{"truncated gzip", gzipBytes(t, images)[:100], labels, Train, []string{"IMAGES", "truncated", "delete it"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.images != nil {
				writeFile(t, dir, imagesName, tt.images)
			}
			if tt.labels != nil {
				writeFile(t, dir, labelsName, tt.labels)
			}
			s, err := Load(MNIST, dir, tt.split)
			if err == nil {
				t.Fatalf("got %d images, want an error", s.N)
			}
			r := strings.NewReplacer("DIR", dir,
				"IMAGES", filepath.Join(dir, imagesName), "LABELS", filepath.Join(dir, labelsName))
			for _, want := range tt.wants {
				if want := r.Replace(want); !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
		})
	}
}

func TestLoadUnknownName(t *testing.T) {
	_, err := Load("cifar", t.TempDir(), Train)
	wantError(t, err, `unknown data set "cifar"`)
}

func TestDir(t *testing.T) {
	tests := []struct {
		name, flag string
		env        map[string]string // unset variables are empty
		want       string
	}{
		{MNIST, "/flag", map[string]string{EnvMNIST: "/m", EnvData: "/d"}, "/flag"},
		{MNIST, "", map[string]string{EnvMNIST: "/m", EnvData: "/d"}, "/m"},
		{MNIST, "", map[string]string{EnvData: "/d"}, "/d"},
		{MNIST, "", map[string]string{EnvFashionMNIST: "/f"}, "./data/mnist"},
		{MNIST, "", nil, "./data/mnist"},
		// $LATENT_DATA names MNIST's folder: never Fashion-MNIST's.
		{FashionMNIST, "", map[string]string{EnvData: "/d", EnvMNIST: "/m"}, "/usr/share/datasets/fashion-mnist"},
		{FashionMNIST, "", map[string]string{EnvFashionMNIST: "/f", EnvData: "/d"}, "/f"},
		{FashionMNIST, "", nil, "/usr/share/datasets/fashion-mnist"},
		{FashionMNIST, "rel/dir", map[string]string{EnvFashionMNIST: "/f"}, "rel/dir"},
	}
	for _, tt := range tests {
		for _, v := range []string{EnvData, EnvMNIST, EnvFashionMNIST} {
			t.Setenv(v, tt.env[v])
		}
		if got := Dir(tt.name, tt.flag); got != tt.want {
			t.Errorf("with %v, Dir(%q, %q) = %q, want %q", tt.env, tt.name, tt.flag, got, tt.want)
		}
	}
}

// TestLoadRefusesAnotherDataSet reads Fashion-MNIST's real files from a
// folder named for MNIST, and checks that Load refuses them with an error
// that names both data sets and what to do, and records the files it read
// with their canonical MD5s when the names match.
func TestLoadRefusesAnotherDataSet(t *testing.T) {
	fashion := DefaultFashionDir
	if err := Verify(FashionMNIST, fashion); err != nil {
		t.Fatalf("Fashion-MNIST (apt-get install dataset-fashion-mnist): %v", err)
	}
	_, err := Load(MNIST, fashion, Test)
	wantError(t, err, "fashion-mnist's file, not mnist's", "--dataset fashion-mnist", "$"+EnvMNIST)
	_, err = Load(FashionMNIST, mnistDir(t), Test)
	wantError(t, err, "mnist's file, not fashion-mnist's", "$"+EnvFashionMNIST)

	set, err := Load(FashionMNIST, fashion, Test)
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Files) != 2 {
		t.Fatalf("Files %v, want the images and labels files", set.Files)
	}
	for _, f := range set.Files {
		base := strings.TrimSuffix(filepath.Base(f.Path), ".gz")
		if f.MD5 != checksums[FashionMNIST][base] {
			t.Errorf("%s: MD5 %s, want the canonical %s", f.Path, f.MD5, checksums[FashionMNIST][base])
		}
	}
}

func TestVerifyMNIST(t *testing.T) {
	dir := mnistDir(t)
	if err := Verify(MNIST, dir); err != nil {
		t.Fatal(err)
	}
	// MNIST is not Fashion-MNIST: every file's MD5 differs.
	err := Verify(FashionMNIST, dir)
	for _, base := range fileNames {
		wantError(t, err, filepath.Join(dir, base+".gz")+": MD5 of the decompressed content")
	}
}

func TestVerifyDamaged(t *testing.T) {
	src := mnistDir(t)
	labelsPath := filepath.Join(src, "t10k-labels-idx1-ubyte.gz")
	labels, err := ReadLabelsFile(labelsPath)
	if err != nil {
		t.Fatal(err)
	}
	changed := bytes.Clone(labels)
	changed[0] = (changed[0] + 1) % 10
	tests := []struct {
		name  string
		file  []byte
		wants []string
	}{
		{"one label changed", gzipBytes(t, idxLabels(changed)), []string{"MD5 of the decompressed content is", "want 27ae3e4e09519cfbb04c329615203637", "delete it"}},
		{"one label missing", gzipBytes(t, idxLabels(labels[1:])), []string{"decompressed content is 10007 bytes, want 10008", "delete it"}},
		{"corrupt gzip", []byte{0x1f, 0x8b, 8, 0, 1, 2}, []string{"gzip", "delete it"}},
	}
	dir := t.TempDir()
	for _, base := range []string{"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte"} {
		copyFile(t, filepath.Join(src, base+".gz"), dir)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, dir, "t10k-labels-idx1-ubyte", tt.file)
			err := Verify(MNIST, dir)
			wantError(t, err, append(tt.wants, path)...)
			for _, base := range fileNames[:3] {
				if err != nil && strings.Contains(err.Error(), base) {
					t.Errorf("error %q names an intact file, %s", err, base)
				}
			}
		})
	}
	os.Remove(filepath.Join(dir, "t10k-labels-idx1-ubyte"))
	wantError(t, Verify(MNIST, dir), "t10k-labels-idx1-ubyte.gz missing in folder "+dir)
}

// TestSkipMD5 reads a split with and without SkipMD5, from a folder that
// holds MNIST's labels beside the images of another data set, and from
// MNIST's own folder: both refuse the other data set's images, by MD5 or
// by CRC-32, and read MNIST's alike; the scan without the MD5 leaves the
// images file's MD5 empty.
func TestSkipMD5(t *testing.T) {
	mnist := mnistDir(t)
	if err := Verify(FashionMNIST, DefaultFashionDir); err != nil {
		t.Fatalf("Fashion-MNIST (apt-get install dataset-fashion-mnist): %v", err)
	}
	mixed := t.TempDir()
	for from, base := range map[string]string{DefaultFashionDir: "t10k-images-idx3-ubyte.gz", mnist: "t10k-labels-idx1-ubyte.gz"} {
		if err := os.Symlink(filepath.Join(from, base), filepath.Join(mixed, base)); err != nil {
			t.Fatal(err)
		}
	}
	var sets [2]*Set
	for i, skip := range []bool{false, true} {
		st, err := OpenIDX(MNIST, mixed, Test)
		if err != nil {
			t.Fatal(err)
		}
		if skip {
			st.SkipMD5()
		}
		_, err = st.ReadAll(context.Background())
		wantError(t, err, "fashion-mnist's file, not mnist's", "--dataset fashion-mnist")

		if st, err = OpenIDX(MNIST, mnist, Test); err != nil {
			t.Fatal(err)
		}
		if skip {
			st.SkipMD5()
		}
		if sets[i], err = st.ReadAll(context.Background()); err != nil {
			t.Fatal(err)
		}
		files := st.Files()
		want := checksums[MNIST]["t10k-images-idx3-ubyte"]
		if skip {
			want = ""
		}
		if len(files) != 2 || files[0].MD5 != want || files[1].MD5 != checksums[MNIST]["t10k-labels-idx1-ubyte"] {
			t.Errorf("SkipMD5 %v: files %+v, want the images' MD5 %q and the labels'", skip, files, want)
		}
	}
	if !bytes.Equal(sets[0].Pixels, sets[1].Pixels) || !bytes.Equal(sets[0].Labels, sets[1].Labels) {
		t.Error("the split read with SkipMD5 differs from the split read without")
	}
}

// TestCRC32s checks the table of CRC-32s against the real files.
func TestCRC32s(t *testing.T) {
	for name, dir := range map[string]string{MNIST: mnistDir(t), FashionMNIST: DefaultFashionDir} {
		for base, want := range crc32s[name] {
			f, err := os.Open(filepath.Join(dir, base+".gz"))
			if err != nil {
				t.Fatal(err)
			}
			d, _, err := decompress(f)
			if err != nil {
				t.Fatal(err)
			}
			h := crc32.NewIEEE()
			if _, err := io.Copy(h, d); err != nil {
				t.Fatal(err)
			}
			f.Close()
			if got := hex.EncodeToString(h.Sum(nil)); got != want {
				t.Errorf("%s %s: CRC-32 %s, table %s", name, base, got, want)
			}
		}
	}
}
