package dataset

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/latent-ai/latent/internal/pixel"
	"hash"
	"hash/crc32"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Names of the data sets that Load, Ensure and Verify know.
const (
	MNIST        = "mnist"
	FashionMNIST = "fashion-mnist"
)

// Splits of a data set.
const (
	Train = "train" // 60000 records
	Test  = "test"  // 10000 records, files named t10k-*
)

// Side is the number of rows and of columns of an MNIST-type image.
const Side = 28

// DefaultFashionDir is where Debian's package dataset-fashion-mnist
// installs Fashion-MNIST.
const DefaultFashionDir = "/usr/share/datasets/fashion-mnist"

// EnvData is the environment variable that names MNIST's folder when no
// --data flag is given: the older name of EnvMNIST, read for MNIST only.
const EnvData = "LATENT_DATA"

// The environment variables that name each data set's folder when no
// --data flag is given. Each applies to its own data set only, so a folder
// named for MNIST is never read as Fashion-MNIST.
const (
	EnvMNIST        = "LATENT_MNIST"
	EnvFashionMNIST = "LATENT_FASHION_MNIST"
)

// ClassNames returns the names of the labels 0-9 of the data set name: the
// digits for MNIST, the articles of clothing for Fashion-MNIST, and nil for
// another name.
func ClassNames(name string) []string {
	switch name {
	case MNIST:
		return []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}
	case FashionMNIST:
		return []string{"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"}
	}
	return nil
}

// EnvDir returns the environment variable that names the folder of the
// data set name, or "" for an unknown name.
func EnvDir(name string) string {
	switch name {
	case MNIST:
		return EnvMNIST
	case FashionMNIST:
		return EnvFashionMNIST
	}
	return ""
}

// fashionDir is DefaultFashionDir; tests replace it.
var fashionDir = DefaultFashionDir

// fileNames are the base names of the four files of a data set, without
// the .gz suffix: train images, train labels, test images, test labels.
var fileNames = []string{
	"train-images-idx3-ubyte",
	"train-labels-idx1-ubyte",
	"t10k-images-idx3-ubyte",
	"t10k-labels-idx1-ubyte",
}

// Set is one split of a data set, loaded in memory.
type Set struct {
	Name  string // data set name: "mnist" or "fashion-mnist"
	Split string // "train" or "test"

	N, Rows, Cols int
	// Channels is the number of channels of each image: 1 (also when 0,
	// as in MNIST's IDX files) or 3.
	Channels int

	// Pixels holds N images of Channels×Rows×Cols bytes each, image after
	// image, each channel a plane of rows: 0 is black, 255 full intensity.
	// Image and Floats give them as the models take them, each byte
	// divided by 255.
	Pixels []uint8
	// Labels holds the N class labels, each in 0-9.
	Labels []uint8
	// Files are the images file and the labels file the split was read
	// from, with the MD5 of their decompressed content (IDX sets).
	Files []File
	// IDs name the images, in order, for sets read by Open: paths
	// relative to the source folder, or indices in an .npy.
	IDs []string
	// Classes name the labels of a set read by Open from a folder in
	// ImageFolder layout; nil otherwise (see ClassNames for IDX sets).
	Classes []string
}

// File is one data file that a Set was read from.
type File struct {
	Path string `json:"path"`
	// MD5 is the hex MD5 of the file's decompressed content: the canonical
	// checksum for the real MNIST and Fashion-MNIST files.
	MD5 string `json:"md5"`
}

// ID returns the ID of image i of s: IDs[i], or, for a set of numbered
// images (IDX), SPLIT/N where N is first+i, the image's position in its
// split when s is a batch that starts at position first.
func (s *Set) ID(i, first int) string {
	if s.IDs != nil {
		return s.IDs[i]
	}
	return s.Split + "/" + strconv.Itoa(first+i)
}

// Size returns the number of values of one image, C×H×W.
func (s *Set) Size() int { return max(s.Channels, 1) * s.Rows * s.Cols }

// Image returns image i as the models take it: a new slice of Size()
// values, each pixel byte divided by 255, in [0, 1]. Like a slice index,
// it panics if i is not in [0, s.N).
func (s *Set) Image(i int) []float32 {
	size := s.Size()
	return pixel.ToFloat32(make([]float32, size), s.Pixels[i*size:(i+1)*size])
}

// Floats returns images lo to lo+n-1 as the models take them (see Image),
// in dst's memory when it is large enough, else in a new slice.
func (s *Set) Floats(dst []float32, lo, n int) []float32 {
	size := s.Size()
	if cap(dst) < n*size {
		dst = make([]float32, n*size)
	}
	return pixel.ToFloat32(dst[:n*size], s.Pixels[lo*size:(lo+n)*size])
}

// Dir returns the folder that holds the data set name: flagValue (the
// value of a --data flag) if it is not empty, else the data set's own
// variable (EnvDir: $LATENT_MNIST or $LATENT_FASHION_MNIST) if set, else,
// for MNIST only, $LATENT_DATA if set, else ./data/mnist for "mnist",
// DefaultFashionDir for "fashion-mnist" and ./data/NAME for any other name.
func Dir(name, flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	if env := EnvDir(name); env != "" {
		if v := os.Getenv(env); v != "" {
			return v
		}
	}
	if name == MNIST {
		if v := os.Getenv(EnvData); v != "" {
			return v
		}
	}
	if name == FashionMNIST {
		return fashionDir
	}
	return "./data/" + name
}

// HoldsIDX reports whether the folder dir holds an IDX images file of a
// split (train-images-idx3-ubyte or t10k-images-idx3-ubyte, gzipped or
// not): a folder of IDX files rather than of one's own images.
func HoldsIDX(dir string) bool {
	for _, base := range []string{fileNames[0], fileNames[2]} {
		if p, err := findFile(dir, base); err == nil && p != "" {
			return true
		}
	}
	return false
}

func checkName(name string) error {
	if name != MNIST && name != FashionMNIST {
		return fmt.Errorf("dataset: unknown data set %q, want %q or %q", name, MNIST, FashionMNIST)
	}
	return nil
}

// splitFiles returns the base names of the images and labels files of split.
func splitFiles(split string) (images, labels string, err error) {
	switch split {
	case Train:
		return fileNames[0], fileNames[1], nil
	case Test:
		return fileNames[2], fileNames[3], nil
	}
	return "", "", fmt.Errorf("dataset: unknown split %q, want %q or %q", split, Train, Test)
}

// findFile returns the path of base+".gz" or, failing that, base in dir,
// or "" if neither exists.
func findFile(dir, base string) (string, error) {
	for _, name := range []string{base + ".gz", base} {
		path := filepath.Join(dir, name)
		_, err := os.Stat(path)
		if err == nil {
			return path, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("dataset: %w", err)
		}
	}
	return "", nil
}

// findFiles returns the paths of bases in dir, or an error that lists the
// missing files and says how to get them.
func findFiles(name, dir string, bases ...string) ([]string, error) {
	var paths, missing []string
	for _, base := range bases {
		path, err := findFile(dir, base)
		if err != nil {
			return nil, err
		}
		if path == "" {
			missing = append(missing, base+".gz")
		}
		paths = append(paths, path)
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("dataset: %s: %s missing in folder %s (the names without .gz are accepted too); %s",
			name, strings.Join(missing, ", "), dir, obtainHint(name, dir))
	}
	return paths, nil
}

// obtainHint says how to get the files of data set name into dir.
func obtainHint(name, dir string) string {
	if name == FashionMNIST && filepath.Clean(dir) == filepath.Clean(fashionDir) {
		return "install them with: apt-get install dataset-fashion-mnist (or name another folder with --data or $" + EnvFashionMNIST + ")"
	}
	return "let the program download them (it needs network access), or " + copyHint(name, dir)
}

// copyHint says which files to copy into dir, and from where.
func copyHint(name, dir string) string {
	var all []string
	for _, base := range fileNames {
		all = append(all, base+".gz")
	}
	from := ""
	if m := Mirrors(name); len(m) > 0 {
		from = " (from " + m[0] + ")"
	}
	return "copy the files " + strings.Join(all, ", ") + from + " into " + dir
}

// Load reads the split ("train" or "test") of the data set name ("mnist"
// or "fashion-mnist") from the folder dir, which holds the four standard
// files train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz,
// t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz, or the same
// names without .gz; see OpenIDX for the checks. The Set records the files
// it was read from, with the MD5 of each one's decompressed content.
//
// The pixels are kept as the files hold them, one byte each: the train
// split takes 47 MB.
func Load(name, dir, split string) (*Set, error) {
	s, err := OpenIDX(name, dir, split)
	if err != nil {
		return nil, err
	}
	return s.ReadAll(context.Background())
}

// OpenIDX returns a Stream of the split ("train" or "test") of the data
// set name ("mnist" or "fashion-mnist") in the folder dir (see Load). It
// reads the labels file at once, and the images as the Stream is scanned.
// It checks that the images are 28x28, that there are as many images as
// labels, and that every label is in 0-9. It computes the MD5 of each
// file's decompressed content while it reads (Stream.Files), and refuses a
// file that carries the checksum of another known data set's file
// (Fashion-MNIST's files in the folder named for MNIST, say); for the
// images file, at the end of a scan. Files with unknown checksums, such
// as a user's own IDX files, are read.
func OpenIDX(name, dir, split string) (*Stream, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	imagesBase, labelsBase, err := splitFiles(split)
	if err != nil {
		return nil, err
	}
	paths, err := findFiles(name, dir, imagesBase, labelsBase)
	if err != nil {
		return nil, err
	}
	imagesPath, labelsPath := paths[0], paths[1]

	labels, labelsSum, err := readLabelsSum(labelsPath)
	if err != nil {
		return nil, err
	}
	if err := checkOwner(checksums, name, dir, labelsPath, labelsSum); err != nil {
		return nil, err
	}
	if len(labels) == 0 {
		return nil, fmt.Errorf("dataset: %s: no labels; the file is damaged: delete it so that it is downloaded again", labelsPath)
	}
	for i, l := range labels {
		if l > 9 {
			return nil, fmt.Errorf("dataset: %s: label %d is %d, want 0-9; the file is damaged or not an MNIST labels file: delete it so that it is downloaded again", labelsPath, i, l)
		}
	}
	s := &Stream{name: name, split: split, format: FormatIDX, where: imagesPath, channels: 1, rows: Side, cols: Side,
		classes: ClassNames(name), labelled: true, n: len(labels), strict: true}
	s.read = func(keep func(int) bool, emit func(item) error) error {
		h, known := md5.New(), checksums
		if s.noMD5 {
			h, known = crc32.NewIEEE(), crc32s
		}
		sum, err := readImages(imagesPath, labelsPath, labels, h, keep, emit)
		if err != nil {
			return err
		}
		if err := checkOwner(known, name, dir, imagesPath, sum); err != nil {
			return err
		}
		if s.noMD5 {
			sum = "" // a CRC-32, not the MD5 that File records
		}
		s.files = []File{{Path: imagesPath, MD5: sum}, {Path: labelsPath, MD5: labelsSum}}
		return nil
	}
	return s, nil
}

// checkOwner refuses the file at path, read for the data set name, if the
// checksum of its content, sum, is that of another known data set's file
// in known: checksums (MD5s) or crc32s.
func checkOwner(known map[string]map[string]string, name, dir, path, sum string) error {
	for other, files := range known {
		if other == name || !slices.Contains(slices.Collect(maps.Values(files)), sum) {
			continue
		}
		return fmt.Errorf("dataset: %s is %s's file, not %s's: the folder %s holds %s; "+
			"use --dataset %s for it, or name %s's folder with --data or $%s",
			path, other, name, dir, other, other, name, EnvDir(name))
	}
	return nil
}

// readLabelsSum reads a labels file as ReadLabelsFile does, and returns the
// hex MD5 of its decompressed content too.
func readLabelsSum(path string) ([]uint8, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, "", fmt.Errorf("dataset: %w", err)
	}
	defer f.Close()
	d, _, err := decompress(f)
	if err != nil {
		return nil, "", fileError(path, err)
	}
	h := md5.New()
	labels, err := ReadLabels(io.TeeReader(d, h))
	if err != nil {
		return nil, "", fileError(path, err)
	}
	return labels, hex.EncodeToString(h.Sum(nil)), nil
}

// readImages reads the images file at path, which must hold one image
// of 28x28 pixels for each label, emits those for which keep (nil: all)
// with their labels, and returns the hex checksum of the file's
// decompressed content by h. The header is checked before any image is read.
func readImages(path, labelsPath string, labels []uint8, h hash.Hash, keep func(int) bool, emit func(item) error) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("dataset: %w", err)
	}
	defer f.Close()
	gz, _, err := decompress(f)
	if err != nil {
		return "", fileError(path, err)
	}
	d := io.TeeReader(gz, h)
	count, rows, cols, err := readImageHeader(d)
	if err != nil {
		return "", fileError(path, err)
	}
	if rows != Side || cols != Side {
		return "", fmt.Errorf("dataset: %s: images are %dx%d, want %dx%d; this is not an MNIST-type images file: delete it so that it is downloaded again", path, rows, cols, Side, Side)
	}
	if count != len(labels) {
		return "", fmt.Errorf("dataset: %s holds %d images but %s holds %d labels: the files do not belong together; delete both so that they are downloaded again", path, count, labelsPath, len(labels))
	}
	claim := fmt.Sprintf("%d images of %dx%d", count, rows, cols)
	size := rows * cols
	per := readChunk / size
	buf := make([]byte, per*size)
	for j := 0; j < count; j += per {
		k := min(per, count-j)
		if got, err := io.ReadFull(d, buf[:k*size]); err != nil {
			return "", fileError(path, dataError(err, j*size+got, count*size, claim))
		}
		for i := range k {
			if keep != nil && !keep(j+i) {
				continue
			}
			if err := emit(item{j: j + i, label: labels[j+i], raw: buf[i*size : (i+1)*size]}); err != nil {
				return "", err
			}
		}
	}
	if err := expectEOF(d, claim); err != nil {
		return "", fileError(path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
