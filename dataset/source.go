package dataset

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"

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
	format := o.Format
	if format == "" {
		format = detect(path)
	}
	var (
		out *Opened
		err error
	)
	switch format {
	case FormatFolder:
		out, err = openFolder(path, o)
	case FormatGlob:
		var paths []string
		if paths, err = filepath.Glob(path); err != nil {
			return nil, fmt.Errorf("dataset: glob %q: %w", path, err)
		}
		if len(paths) == 0 {
			return nil, fmt.Errorf("dataset: no file matches %q", path)
		}
		sort.Strings(paths)
		var pool *Set
		var skipped []Skip
		if pool, skipped, err = readPictures(filepath.Dir(path), paths, nil, o); err == nil {
			out = &Opened{Skipped: skipped}
			out.Train, out.Test = holdOut(pool, o)
		}
	case FormatNPY:
		out, err = openNPY(path, o)
	case FormatParquet:
		out, err = openParquet(path, o)
	default:
		return nil, fmt.Errorf("dataset: unknown format %q: want folder, glob, npy or parquet", format)
	}
	if err != nil {
		return nil, err
	}
	out.Format = format
	for _, s := range []*Set{out.Train, out.Test} {
		s.Name = filepath.Base(strings.TrimSuffix(path, string(filepath.Separator)))
		s.Classes = out.Classes
	}
	return out, nil
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

// openFolder reads a folder of pictures; see Open.
func openFolder(root string, o OpenOptions) (*Opened, error) {
	st, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("dataset: %s is not a folder, a glob or an .npy file", root)
	}
	if entries, err := os.ReadDir(root); err == nil && len(entries) == 2 && entries[0].IsDir() && entries[1].IsDir() &&
		entries[0].Name() == "test" && entries[1].Name() == "train" {
		out := &Opened{}
		var testClasses []string
		for _, split := range []string{Train, Test} {
			paths, labels, classes, err := listFolder(filepath.Join(root, split))
			if err != nil {
				return nil, err
			}
			set, skipped, err := readPictures(root, paths, labels, o)
			if err != nil {
				return nil, err
			}
			set.Split = split
			out.Skipped = append(out.Skipped, skipped...)
			if split == Train {
				out.Train, out.Classes = set, classes
			} else {
				out.Test, testClasses = set, classes
			}
		}
		if !slices.Equal(out.Classes, testClasses) {
			return nil, fmt.Errorf("dataset: %s: train/ has the classes %v, test/ %v: want the same", root, out.Classes, testClasses)
		}
		return out, nil
	}
	paths, labels, classes, err := listFolder(root)
	if err != nil {
		return nil, err
	}
	pool, skipped, err := readPictures(root, paths, labels, o)
	if err != nil {
		return nil, err
	}
	out := &Opened{Classes: classes, Skipped: skipped}
	out.Train, out.Test = holdOut(pool, o)
	return out, nil
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

// readPictures decodes the pictures at paths (with labels, or nil) on all
// cores into one Set, in the order of paths, skipping those it cannot read
// unless o.Strict. IDs are the paths relative to root.
func readPictures(root string, paths []string, labels []uint8, o OpenOptions) (*Set, []Skip, error) {
	ids := make([]string, len(paths))
	for j, p := range paths {
		ids[j], _ = filepath.Rel(root, p)
	}
	return decodePictures(root, ids, func(j int) ([]byte, error) { return os.ReadFile(paths[j]) }, labels, o)
}

// decodePictures decodes the pictures that load(j) returns for each of
// ids on all cores, in order; see readPictures.
func decodePictures(where string, ids []string, load func(j int) ([]byte, error), labels []uint8, o OpenOptions) (*Set, []Skip, error) {
	c, h, w := o.Input[0], o.Input[1], o.Input[2]
	pix := make([][]float32, len(ids))
	errs := make([]error, len(ids))
	var next sync.Mutex
	i := 0
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for {
				next.Lock()
				j := i
				i++
				next.Unlock()
				if j >= len(ids) {
					return
				}
				data, err := load(j)
				if err == nil && len(data) == 0 {
					err = errors.New("empty file")
				}
				if err == nil {
					pix[j], err = imageprep.Decode(data, imageprep.Options{Channels: c, Height: h, Width: w, Fit: o.Fit})
				}
				errs[j] = err
			}
		})
	}
	wg.Wait()
	s := &Set{Rows: h, Cols: w, Channels: c}
	var skipped []Skip
	for j, rel := range ids {
		if errs[j] != nil {
			p := filepath.Join(where, rel)
			if o.Strict {
				return nil, nil, fmt.Errorf("dataset: %s: %w (without --strict it would be skipped)", p, errs[j])
			}
			skipped = append(skipped, Skip{Path: p, Err: errs[j]})
			continue
		}
		s.Images = append(s.Images, pix[j]...)
		s.IDs = append(s.IDs, rel)
		if labels != nil {
			s.Labels = append(s.Labels, labels[j])
		} else {
			s.Labels = append(s.Labels, 0)
		}
		s.N++
	}
	if s.N == 0 {
		return nil, skipped, fmt.Errorf("dataset: %s: none of the %d pictures could be read (the first: %s: %v)", where, len(ids), skipped[0].Path, skipped[0].Err)
	}
	return s, skipped, nil
}

// holdOut splits pool into a training set and a test set of
// o.TestFraction of its images (at least one, and at least one left to
// train on when there are two), drawn with o.Seed; each keeps the pool's
// order.
func holdOut(pool *Set, o OpenOptions) (train, test *Set) {
	n := pool.N
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
	train, test = pool.subset(held, false, Train), pool.subset(held, true, Test)
	return train, test
}

// subset returns the images of s whose held is want, as split.
func (s *Set) subset(held []bool, want bool, split string) *Set {
	size := len(s.Images) / max(s.N, 1)
	out := &Set{Name: s.Name, Split: split, Rows: s.Rows, Cols: s.Cols, Channels: s.Channels}
	for j := range s.N {
		if held[j] != want {
			continue
		}
		out.Images = append(out.Images, s.Images[j*size:(j+1)*size]...)
		out.Labels = append(out.Labels, s.Labels[j])
		if s.IDs != nil {
			out.IDs = append(out.IDs, s.IDs[j])
		}
		out.N++
	}
	return out
}

// openNPY reads an .npy array of images; see Open.
func openNPY(path string, o OpenOptions) (*Opened, error) {
	read := func(p, labelsPath string) (*Set, error) {
		data, shape, err := npyarray.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("dataset: %s: %w", p, err)
		}
		want := o.Input
		switch {
		case len(shape) == 3 && want[0] == 1 && shape[1] == want[1] && shape[2] == want[2]:
		case len(shape) == 4 && shape[1] == want[0] && shape[2] == want[1] && shape[3] == want[2]:
		default:
			return nil, fmt.Errorf("dataset: %s holds an array of shape %v: want N×%d×%d or N×%d×%d×%d, the model's input (--input)", p, shape, want[1], want[2], want[0], want[1], want[2])
		}
		n := shape[0]
		if n < 1 || n > MaxSourceImages {
			return nil, fmt.Errorf("dataset: %s holds %d images: want 1 to %d", p, n, MaxSourceImages)
		}
		uint8s := false
		for _, v := range data {
			if v > 1 {
				uint8s = true
				break
			}
		}
		for i, v := range data {
			switch {
			case uint8s:
				data[i] = v / 255 // a uint8 array (or float values of 0-255)
			case !(v >= 0 && v <= 1):
				return nil, fmt.Errorf("dataset: %s: value %d is %v: want pixels in [0,1], or uint8", p, i, v)
			}
		}
		s := &Set{N: n, Rows: want[1], Cols: want[2], Channels: want[0], Images: data, Labels: make([]uint8, n)}
		for i := range n {
			s.IDs = append(s.IDs, fmt.Sprint(i))
		}
		if labelsPath == "" {
			return s, nil
		}
		if _, err := os.Stat(labelsPath); errors.Is(err, fs.ErrNotExist) && o.Labels == "" {
			return s, nil
		}
		labels, lshape, err := npyarray.ReadFile(labelsPath)
		if err != nil {
			return nil, fmt.Errorf("dataset: labels %s: %w", labelsPath, err)
		}
		if len(lshape) != 1 || lshape[0] != n {
			return nil, fmt.Errorf("dataset: labels %s of shape %v for %d images: want [%d]", labelsPath, lshape, n, n)
		}
		for i, l := range labels {
			if l < 0 || l > 255 || l != float32(int(l)) {
				return nil, fmt.Errorf("dataset: labels %s: label %d is %v: want integers of 0 to 255", labelsPath, i, l)
			}
			s.Labels[i] = uint8(l)
		}
		return s, nil
	}
	base := strings.TrimSuffix(path, filepath.Ext(path))
	labels := o.Labels
	if labels == "" {
		labels = base + "-labels.npy"
	}
	all, err := read(path, labels)
	if err != nil {
		return nil, err
	}
	out := &Opened{}
	if _, err := os.Stat(base + "-test.npy"); err == nil {
		out.Train = all
		out.Train.Split = Train
		if out.Test, err = read(base+"-test.npy", base+"-test-labels.npy"); err != nil {
			return nil, err
		}
		out.Test.Split = Test
		return out, nil
	}
	out.Train, out.Test = holdOut(all, o)
	return out, nil
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

// openParquet reads a Parquet file in the Hugging Face image layout; see
// Open. Each row's picture is its image.bytes; its ID is image.path, or
// its row number. Labels come from the label column when there is one.
func openParquet(path string, o OpenOptions) (*Opened, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	pf, err := parquet.OpenFile(f, st.Size())
	if err != nil {
		return nil, fmt.Errorf("dataset: %s is not a readable Parquet file: %w", path, err)
	}
	if _, ok := pf.Schema().Lookup("image", "bytes"); !ok {
		return nil, fmt.Errorf("dataset: %s has no image.bytes column: want the Hugging Face image layout (a struct column image {bytes, path}, an optional label)", path)
	}
	_, labelled := pf.Schema().Lookup("label")
	r := parquet.NewGenericReader[hfRow](pf)
	defer r.Close()
	n := r.NumRows()
	if n < 1 || n > MaxSourceImages {
		return nil, fmt.Errorf("dataset: %s holds %d rows: want 1 to %d", path, n, MaxSourceImages)
	}
	rows := make([]hfRow, n)
	for read := 0; read < len(rows); {
		k, err := r.Read(rows[read:])
		read += k
		if err != nil && !(errors.Is(err, io.EOF) && read == len(rows)) {
			return nil, fmt.Errorf("dataset: %s: row %d: %w", path, read, err)
		}
		if k == 0 && err == nil {
			return nil, fmt.Errorf("dataset: %s: no rows after %d", path, read)
		}
	}
	ids := make([]string, n)
	var labels []uint8
	if labelled {
		labels = make([]uint8, n)
	}
	for j, row := range rows {
		ids[j] = row.Image.Path
		if ids[j] == "" {
			ids[j] = fmt.Sprint(j)
		}
		if labelled && row.Label != nil {
			if *row.Label < 0 || *row.Label > 255 {
				return nil, fmt.Errorf("dataset: %s: row %d has label %d: want 0 to 255", path, j, *row.Label)
			}
			labels[j] = uint8(*row.Label)
		}
	}
	pool, skipped, err := decodePictures(path, ids, func(j int) ([]byte, error) { return rows[j].Image.Bytes, nil }, labels, o)
	if err != nil {
		return nil, err
	}
	out := &Opened{Skipped: skipped}
	out.Train, out.Test = holdOut(pool, o)
	return out, nil
}
