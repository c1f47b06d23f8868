package dataset

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"github.com/latent-ai/latent/internal/pixel"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/latent-ai/latent/imageprep"
	"github.com/latent-ai/latent/npyarray"
	"github.com/parquet-go/parquet-go"
)

// The kinds of source that Open reads, as OpenOptions.Format names them.
const (
	FormatFolder = "folder" // a folder of PNG and JPEG files, recursively
	FormatGlob   = "glob"   // the PNG and JPEG files a glob pattern matches
	FormatNPY    = "npy"    // an .npy array of images
	// FormatParquet is a Parquet file in the Hugging Face image-dataset
	// layout: a struct column image {bytes, path} and an optional integer
	// column label.
	FormatParquet = "parquet"
	// FormatIDX is MNIST's format, which Load and OpenIDX read.
	FormatIDX = "idx"
)

// MaxSourceImages bounds the images that Open reads from one source.
const MaxSourceImages = 10_000_000

// OpenOptions configure Open.
type OpenOptions struct {
	// Format is FormatFolder, FormatGlob or FormatNPY; empty detects it
	// from path (see Open).
	Format string
	// Input is the model's image shape, C×H×W (C 1 or 3); nil means
	// MNIST's 1×28×28. Pictures are converted to C channels and resized to
	// H×W (package imageprep: area averaging, deterministic), fitted
	// as Fit says; .npy arrays must have the shape already.
	Input []int
	// Fit is imageprep's: "stretch" (also when empty), "crop" or "pad".
	Fit string
	// TestFraction is the share of the images held out as the test split
	// when the source has none (a folder without train/ and test/
	// subfolders, a glob, an .npy without a test file); 0 means 0.1. The
	// held-out images are drawn with Seed, so a run sees the same split
	// every time.
	TestFraction float64
	Seed         uint64
	// Labels names an .npy of the labels of an .npy source, uint8 [N];
	// empty looks for NAME-labels.npy beside NAME.npy.
	Labels string
	// Strict makes any unreadable file an error instead of a skip.
	Strict bool
}

// Skip is a file that Open skipped, and why.
type Skip struct {
	Path string
	Err  error
}

// Opened is what Open read: the two splits, the class names of the labels
// (nil for an unlabelled source: its labels are all 0), and the files it
// skipped.
type Opened struct {
	Format      string
	Train, Test *Set
	Classes     []string
	Skipped     []Skip
}

// Open reads a source of images of the caller's own: a folder of PNG and
// JPEG files (recursively), a glob pattern of such files, or an .npy array
// of images, N×H×W or N×C×H×W, uint8 (0-255) or float32 (in [0,1]).
//
// Without Format, a path with a glob metacharacter (*?[) is a glob, a file
// ending in .npy an array, and a folder a folder of pictures.
//
// Labels: a folder in ImageFolder layout, every picture in a first-level
// subfolder, takes those subfolders' names, sorted, as its classes. A
// folder whose first level is exactly train/ and test/, each in that
// layout, gives the two splits as they are. Other folders and globs are
// unlabelled. An .npy takes its labels from a labels .npy (see
// OpenOptions.Labels), and its test split from NAME-test.npy when there is
// one.
//
// Corrupt, truncated, empty, unsupported and oversized files are skipped
// and listed in Opened.Skipped, unless Strict makes them an error; so is a
// picture whose header claims more than imageprep's limit on a side,
// refused before it is decoded. Each Set's IDs name its images (paths
// relative to the folder, or indices), in order.
func Open(path string, o OpenOptions) (*Opened, error) {
	out := &Opened{}
	for _, split := range []string{Train, Test} {
		st, err := OpenSplit(path, o, split)
		if err != nil {
			return nil, err
		}
		set, err := st.ReadAll(context.Background())
		out.Skipped = append(out.Skipped, st.Skipped()...)
		if err != nil {
			return nil, err
		}
		if split == Train {
			out.Train, out.Classes = set, st.Classes()
		} else {
			out.Test = set
		}
		out.Format = st.format
	}
	return out, nil
}

// OpenSplit returns a Stream of one split, Train or Test, of the source
// at path (see Open), to read the images in batches as they are used
// (Stream.Scan). The held-out test split is drawn over the images listed,
// before any is decoded, so a picture that cannot be read does not move
// the others from one split to the other.
func OpenSplit(path string, o OpenOptions, split string) (*Stream, error) {
	if o.Input == nil {
		o.Input = []int{1, Side, Side}
	}
	if len(o.Input) != 3 || (o.Input[0] != 1 && o.Input[0] != 3) || o.Input[1] < 1 || o.Input[2] < 1 || o.Input[1] > 4096 || o.Input[2] > 4096 {
		return nil, fmt.Errorf("dataset: input shape %v: want C×H×W with 1 or 3 channels and sides of 1 to 4096", o.Input)
	}
	if o.TestFraction == 0 {
		o.TestFraction = 0.1
	}
	if o.TestFraction < 0 || o.TestFraction >= 1 {
		return nil, fmt.Errorf("dataset: test fraction %v: want more than 0 and less than 1", o.TestFraction)
	}
	if split != Train && split != Test {
		return nil, fmt.Errorf("dataset: unknown split %q, want %q or %q", split, Train, Test)
	}
	format := o.Format
	if format == "" {
		format = detect(path)
	}
	var (
		l   *listing
		err error
	)
	switch format {
	case FormatFolder:
		l, err = listFolderSource(path, o)
	case FormatGlob:
		var paths []string
		if paths, err = filepath.Glob(path); err != nil {
			return nil, fmt.Errorf("dataset: glob %q: %w", path, err)
		}
		if len(paths) == 0 {
			return nil, fmt.Errorf("dataset: no file matches %q", path)
		}
		if len(paths) > MaxSourceImages {
			return nil, fmt.Errorf("dataset: %q matches more than %d files", path, MaxSourceImages)
		}
		sort.Strings(paths)
		l = pictureFiles(filepath.Dir(path), paths, nil, o)
	case FormatNPY:
		l, err = listNPY(path, o)
	case FormatParquet:
		l, err = listParquet(path, o)
	default:
		return nil, fmt.Errorf("dataset: unknown format %q: want folder, glob, npy or parquet", format)
	}
	if err != nil {
		return nil, err
	}
	s := &Stream{
		name: filepath.Base(strings.TrimSuffix(path, string(filepath.Separator))), split: split, format: format,
		channels: o.Input[0], rows: o.Input[1], cols: o.Input[2], classes: l.classes, labelled: l.labelled, strict: o.Strict,
	}
	switch {
	case l.test != nil && split == Test:
		l = l.test
		s.n = l.n
	case l.test != nil:
		s.n = l.n
	default:
		held := heldOut(l.n, o)
		s.keep = func(j int) bool { return held[j] == (split == Test) }
		for _, h := range held {
			if h == (split == Test) {
				s.n++
			}
		}
	}
	s.where, s.read, s.readFrom, s.decode, s.total = l.where, l.read, l.readFrom, l.decode, l.n
	if s.decode == nil {
		s.strict = true // the pixels are read, not decoded: nothing to skip
	}
	return s, nil
}

// listing is what a source lists before its images are read: their
// number, their classes, and how to read and decode them (see Stream).
type listing struct {
	where    string
	n        int
	classes  []string
	labelled bool
	read     func(keep func(j int) bool, emit func(item) error) error
	// readFrom, when not nil, is read from the source's image j0 on.
	readFrom func(j0 int, keep func(j int) bool, emit func(item) error) error
	decode   func(it item, dst []uint8) error
	// test is the source's own test split, or nil when the test split is
	// held out of this one.
	test *listing
}

// detect returns the format of path: a glob, an .npy or a folder.
func detect(path string) string {
	switch {
	case strings.ContainsAny(path, "*?["):
		return FormatGlob
	case strings.EqualFold(filepath.Ext(path), ".npy"):
		return FormatNPY
	case strings.EqualFold(filepath.Ext(path), ".parquet"):
		return FormatParquet
	}
	return FormatFolder
}

// isPicture reports whether name has a PNG or JPEG extension.
func isPicture(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".png", ".jpg", ".jpeg":
		return true
	}
	return false
}

// listFolderSource lists a folder of pictures; see Open.
func listFolderSource(root string, o OpenOptions) (*listing, error) {
	st, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("dataset: %s is not a folder, a glob or an .npy file", root)
	}
	if entries, err := os.ReadDir(root); err == nil && len(entries) == 2 && entries[0].IsDir() && entries[1].IsDir() &&
		entries[0].Name() == "test" && entries[1].Name() == "train" {
		var splits [2]*listing
		for i, split := range []string{Train, Test} {
			paths, labels, classes, err := listFolder(filepath.Join(root, split))
			if err != nil {
				return nil, err
			}
			splits[i] = pictureFiles(root, paths, labels, o)
			splits[i].classes, splits[i].labelled = classes, labels != nil
		}
		if !slices.Equal(splits[0].classes, splits[1].classes) {
			return nil, fmt.Errorf("dataset: %s: train/ has the classes %v, test/ %v: want the same", root, splits[0].classes, splits[1].classes)
		}
		splits[0].test = splits[1]
		return splits[0], nil
	}
	paths, labels, classes, err := listFolder(root)
	if err != nil {
		return nil, err
	}
	l := pictureFiles(root, paths, labels, o)
	l.classes, l.labelled = classes, labels != nil
	return l, nil
}

// listFolder lists the PNG and JPEG files under root, sorted, with their
// labels and the class names when root is in ImageFolder layout (every
// picture in a first-level subfolder), else nil labels and classes.
func listFolder(root string) (paths []string, labels []uint8, classes []string, err error) {
	labelled := true
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !isPicture(d.Name()) {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		if !strings.Contains(rel, string(filepath.Separator)) {
			labelled = false // a picture at the top: no ImageFolder layout
		}
		paths = append(paths, p)
		if len(paths) > MaxSourceImages {
			return fmt.Errorf("more than %d pictures", MaxSourceImages)
		}
		return nil
	})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("dataset: %s: %w", root, err)
	}
	if len(paths) == 0 {
		return nil, nil, nil, fmt.Errorf("dataset: %s holds no PNG or JPEG file", root)
	}
	sort.Strings(paths)
	if !labelled {
		return paths, nil, nil, nil
	}
	class := func(p string) string {
		rel, _ := filepath.Rel(root, p)
		return strings.SplitN(rel, string(filepath.Separator), 2)[0]
	}
	index := map[string]int{}
	for _, p := range paths {
		if _, ok := index[class(p)]; !ok {
			index[class(p)] = 0
			classes = append(classes, class(p))
		}
	}
	sort.Strings(classes)
	if len(classes) > 256 {
		return nil, nil, nil, fmt.Errorf("dataset: %s has %d classes (first-level folders): at most 256", root, len(classes))
	}
	for i, c := range classes {
		index[c] = i
	}
	for _, p := range paths {
		labels = append(labels, uint8(index[class(p)]))
	}
	return paths, labels, classes, nil
}

// pictureFiles lists the pictures at paths, with their labels (nil: all
// 0); their IDs are the paths relative to root. The decoders read the
// files themselves, so reading spreads over the cores too.
func pictureFiles(root string, paths []string, labels []uint8, o OpenOptions) *listing {
	return &listing{
		where: root,
		n:     len(paths),
		read: func(keep func(int) bool, emit func(item) error) error {
			for j, p := range paths {
				if keep != nil && !keep(j) {
					continue
				}
				it := item{j: j}
				it.id, _ = filepath.Rel(root, p)
				if labels != nil {
					it.label = labels[j]
				}
				if err := emit(it); err != nil {
					return err
				}
			}
			return nil
		},
		decode: func(it item, dst []uint8) error {
			data, err := os.ReadFile(paths[it.j])
			if err != nil {
				return err
			}
			return decodePicture(data, o, dst)
		},
	}
}

// decodePicture decodes the PNG or JPEG file data into dst as o.Input
// says (package imageprep), each value rounded to a byte.
func decodePicture(data []byte, o OpenOptions, dst []uint8) error {
	if len(data) == 0 {
		return errors.New("empty file")
	}
	pix, err := imageprep.Decode(data, imageprep.Options{Channels: o.Input[0], Height: o.Input[1], Width: o.Input[2], Fit: o.Fit})
	if err != nil {
		return err
	}
	pixel.ToUint8(dst, pix)
	return nil
}

// joinID names the image id of the source where in messages.
func joinID(where, id string) string { return filepath.Join(where, id) }

// heldOut draws the images of a source of n that form its test split:
// o.TestFraction of them (at least one, and at least one left to train on
// when there are two), with o.Seed.
func heldOut(n int, o OpenOptions) []bool {
	k := int(float64(n)*o.TestFraction + 0.5)
	k = max(min(k, n-1), 1)
	if n == 1 {
		k = 0
	}
	rng := rand.New(rand.NewPCG(o.Seed, 0x6c61746e))
	held := make([]bool, n)
	for _, j := range rng.Perm(n)[:k] {
		held[j] = true
	}
	return held
}

// listNPY lists an .npy array of images, and NAME-test.npy beside it as
// its test split when there is one; see Open.
func listNPY(path string, o OpenOptions) (*listing, error) {
	base := strings.TrimSuffix(path, filepath.Ext(path))
	labels := o.Labels
	if labels == "" {
		labels = base + "-labels.npy"
	}
	l, err := npySource(path, labels, o)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(base + "-test.npy"); err == nil {
		if l.test, err = npySource(base+"-test.npy", base+"-test-labels.npy", o); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// npySource lists the images of the .npy array at path, N×H×W or
// N×C×H×W, with the labels at labelsPath when that file exists (or was
// named by o.Labels). Float arrays are read once here to find their
// scale: values in [0, 1], or of 0-255 when any is above 1.
func npySource(path, labelsPath string, o OpenOptions) (*listing, error) {
	// open opens the array and reads its header; br buffers f for r.
	open := func() (f *os.File, br *bufio.Reader, r *npyarray.Reader, err error) {
		if f, err = os.Open(path); err != nil {
			return nil, nil, nil, fmt.Errorf("dataset: %w", err)
		}
		br = bufio.NewReaderSize(f, 1<<20)
		if r, err = npyarray.NewReader(br); err != nil {
			f.Close()
			return nil, nil, nil, fmt.Errorf("dataset: %s: %w", path, err)
		}
		return f, br, r, nil
	}
	f, _, r, err := open()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	shape, want := r.Shape(), o.Input
	switch {
	case len(shape) == 3 && want[0] == 1 && shape[1] == want[1] && shape[2] == want[2]:
	case len(shape) == 4 && shape[1] == want[0] && shape[2] == want[1] && shape[3] == want[2]:
	default:
		return nil, fmt.Errorf("dataset: %s holds an array of shape %v: want N×%d×%d or N×%d×%d×%d, the model's input (--input)", path, shape, want[1], want[2], want[0], want[1], want[2])
	}
	n := shape[0]
	if n < 1 || n > MaxSourceImages {
		return nil, fmt.Errorf("dataset: %s holds %d images: want 1 to %d", path, n, MaxSourceImages)
	}
	size := want[0] * want[1] * want[2]
	var factor float32 = 255 // a uint8 array, or float values of 0-255
	if !r.Uint8() {
		hi, err := npyRange(path, r)
		if err != nil {
			return nil, err
		}
		if hi <= 1 {
			factor = 1
		}
	}
	labels := make([]uint8, n)
	labelled := false
	if _, err := os.Stat(labelsPath); err == nil || o.Labels != "" {
		labelled = true
		values, lshape, err := npyarray.ReadFile(labelsPath)
		if err != nil {
			return nil, fmt.Errorf("dataset: labels %s: %w", labelsPath, err)
		}
		if len(lshape) != 1 || lshape[0] != n {
			return nil, fmt.Errorf("dataset: labels %s of shape %v for %d images: want [%d]", labelsPath, lshape, n, n)
		}
		for i, l := range values {
			if l < 0 || l > 255 || l != float32(int(l)) {
				return nil, fmt.Errorf("dataset: labels %s: label %d is %v: want integers of 0 to 255", labelsPath, i, l)
			}
			labels[i] = uint8(l)
		}
	}
	readFrom := func(j0 int, keep func(int) bool, emit func(item) error) error {
		f, br, r, err := open()
		if err != nil {
			return err
		}
		defer f.Close()
		if j0 > 0 {
			if _, err := f.Seek(r.Offset(j0*size), io.SeekStart); err != nil {
				return fmt.Errorf("dataset: %s: %w", path, err)
			}
			br.Reset(f)
			r.Resume(br, j0*size)
		}
		values := make([]float32, size)
		raw := make([]uint8, size)
		for j := j0; j < n; j++ {
			for k := 0; k < size; {
				got, err := r.Read(values[k:])
				if err != nil {
					return fmt.Errorf("dataset: %s: image %d: %w", path, j, err)
				}
				k += got
			}
			if keep != nil && !keep(j) {
				continue
			}
			for i, v := range values {
				raw[i] = uint8(v/factor*255 + 0.5)
			}
			if err := emit(item{j: j, id: strconv.Itoa(j), label: labels[j], raw: raw}); err != nil {
				return err
			}
		}
		return nil
	}
	return &listing{
		where:    path,
		n:        n,
		labelled: labelled,
		read: func(keep func(int) bool, emit func(item) error) error {
			return readFrom(0, keep, emit)
		},
		readFrom: readFrom,
	}, nil
}

// npyRange reads the rest of the float array r, from path, and returns its
// largest value, or an error for a value that is not a pixel: NaN,
// negative, or above 255.
func npyRange(path string, r *npyarray.Reader) (float32, error) {
	var hi float32
	buf := make([]float32, 1<<14)
	for i := 0; ; {
		k, err := r.Read(buf)
		for _, v := range buf[:k] {
			if !(v >= 0 && v <= 255) {
				return 0, fmt.Errorf("dataset: %s: value %d is %v: want pixels in [0,1] or of 0-255, or uint8", path, i, v)
			}
			hi = max(hi, v)
			i++
		}
		if err == io.EOF {
			return hi, nil
		}
		if err != nil {
			return 0, fmt.Errorf("dataset: %s: %w", path, err)
		}
	}
}

// hfRow is a row of a Parquet file in the Hugging Face image-dataset
// layout.
type hfRow struct {
	Image struct {
		Bytes []byte `parquet:"bytes,optional"`
		Path  string `parquet:"path,optional"`
	} `parquet:"image"`
	Label *int64 `parquet:"label,optional"`
}

// listParquet lists a Parquet file in the Hugging Face image layout; see
// Open. Each row's picture is its image.bytes; its ID is image.path, or
// its row number. Labels come from the label column when there is one.
// The rows are read as the images are, a few at a time.
func listParquet(path string, o OpenOptions) (*listing, error) {
	open := func() (*os.File, *parquet.File, error) {
		f, err := os.Open(path)
		if err != nil {
			return nil, nil, fmt.Errorf("dataset: %w", err)
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("dataset: %w", err)
		}
		pf, err := parquet.OpenFile(f, st.Size())
		if err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("dataset: %s is not a readable Parquet file: %w", path, err)
		}
		return f, pf, nil
	}
	f, pf, err := open()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, ok := pf.Schema().Lookup("image", "bytes"); !ok {
		return nil, fmt.Errorf("dataset: %s has no image.bytes column: want the Hugging Face image layout (a struct column image {bytes, path}, an optional label)", path)
	}
	_, labelled := pf.Schema().Lookup("label")
	n := pf.NumRows()
	if n < 1 || n > MaxSourceImages {
		return nil, fmt.Errorf("dataset: %s holds %d rows: want 1 to %d", path, n, MaxSourceImages)
	}
	return &listing{
		where:    path,
		n:        int(n),
		labelled: labelled,
		read: func(keep func(int) bool, emit func(item) error) error {
			f, pf, err := open()
			if err != nil {
				return err
			}
			defer f.Close()
			r := parquet.NewGenericReader[hfRow](pf)
			defer r.Close()
			rows := make([]hfRow, 64)
			for j := 0; j < int(n); {
				k, err := r.Read(rows[:min(len(rows), int(n)-j)])
				if err != nil && !(errors.Is(err, io.EOF) && j+k == int(n)) {
					return fmt.Errorf("dataset: %s: row %d: %w", path, j+k, err)
				}
				if k == 0 {
					return fmt.Errorf("dataset: %s: no rows after %d", path, j)
				}
				for i, row := range rows[:k] {
					it := item{j: j + i, id: row.Image.Path, raw: slices.Clone(row.Image.Bytes)}
					if it.id == "" {
						it.id = strconv.Itoa(j + i)
					}
					if labelled && row.Label != nil {
						if *row.Label < 0 || *row.Label > 255 {
							return fmt.Errorf("dataset: %s: row %d has label %d: want 0 to 255", path, j+i, *row.Label)
						}
						it.label = uint8(*row.Label)
					}
					if keep != nil && !keep(j+i) {
						continue
					}
					if err := emit(it); err != nil {
						return err
					}
				}
				j += k
				clear(rows)
			}
			return nil
		},
		decode: func(it item, dst []uint8) error { return decodePicture(it.raw, o, dst) },
	}, nil
}
