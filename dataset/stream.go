package dataset

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
)

// A Stream reads one split of a source in order, a batch at a time, so
// that memory does not grow with the split: an IDX split (OpenIDX) or a
// split of a source of the user's own images (OpenSplit). Pictures are
// decoded on all cores while the caller works on the batch before.
//
// A Stream can be scanned more than once; it is not safe for concurrent
// use.
type Stream struct {
	name, split string
	where       string // the source, as messages name it
	channels    int
	rows, cols  int
	classes     []string
	labelled    bool
	strict      bool

	// n is the number of images listed in the split; keep(j) says whether
	// the source's image j is in the split (nil: all are).
	n    int
	keep func(j int) bool
	// read calls emit with every image j of the source for which keep(j),
	// in order, and returns emit's first error. It may set files.
	read func(keep func(j int) bool, emit func(item) error) error
	// readFrom, when the source can seek, is read from its image j0 on;
	// total is the number of images of the source (of every split).
	readFrom func(j0 int, keep func(j int) bool, emit func(item) error) error
	total    int
	// decode writes the pixels of it, C×H×W bytes, into dst, on all
	// cores. When it is nil, raw holds the pixels, valid during the emit
	// only, and batches are filled as they are read (scanRaw).
	decode func(it item, dst []uint8) error

	format  string
	files   []File
	skipped []Skip
	noMD5   bool // SkipMD5
}

// SkipMD5 makes the scans of an IDX split (OpenIDX) skip the MD5 of its
// images file, which costs about as much CPU time as inflating it with
// ISA-L (Inflater), and Files then gives that file without an MD5.
// The check that the file is not another data set's uses its CRC-32
// instead, at a tenth of the MD5's cost. For callers that only read the
// images, such as latent encode; a run's record of its data wants the
// MD5. Other sources compute no checksum, and ignore it.
func (s *Stream) SkipMD5() { s.noMD5 = true }

// item is one image of a source as its reader hands it over: its index
// in the source, its ID and label, and its raw content: an encoded
// picture, owned by the item; nil when decode reads the content itself;
// or, for a Stream without decode, the pixels, valid during the emit.
type item struct {
	j     int
	id    string
	label uint8
	raw   []byte
}

// Format returns the kind of source: FormatIDX, or one of Open's.
func (s *Stream) Format() string { return s.format }

// Split returns the split's name, Train or Test.
func (s *Stream) Split() string { return s.split }

// Len returns the number of images listed in the split. A scan delivers
// fewer when some cannot be read (Skipped).
func (s *Stream) Len() int { return s.n }

// Shape returns the shape of each image, C×H×W.
func (s *Stream) Shape() []int { return []int{s.channels, s.rows, s.cols} }

// Skipped returns the images that the last Scan skipped, in order.
func (s *Stream) Skipped() []Skip { return s.skipped }

// Files returns the data files of an IDX split with their MD5s, known
// once a Scan has read them to the end; nil for other sources.
func (s *Stream) Files() []File { return s.files }

// Labelled reports whether the source has labels: IDX files, a folder in
// ImageFolder layout, an .npy with a labels file, a Parquet file with a
// label column. Images of other sources all have the label 0.
func (s *Stream) Labelled() bool { return s.labelled }

// Classes returns the names of the labels: the subfolders of a folder in
// ImageFolder layout, the classes of MNIST and Fashion-MNIST, or nil.
func (s *Stream) Classes() []string { return s.classes }

// errWindowEnd stops a read at the end of a Window.
var errWindowEnd = errors.New("end of the window")

// Window returns a Stream of the images at positions lo to hi-1 of s's
// split (positions count the listed images, readable or not; they are
// clamped to [0, Len()]), so that a split can be read in parts, each by
// another worker. Reading a window reads past the images before it (IDX
// files and Parquet rows have no index to seek with) but decodes only its
// own. Scan's off counts from the window's first image.
func (s *Stream) Window(lo, hi int) *Stream {
	lo, hi = max(0, min(lo, s.n)), max(0, min(hi, s.n))
	hi = max(lo, hi)
	w := *s
	w.n, w.keep, w.skipped, w.files = hi-lo, nil, nil, nil
	keep, read := s.keep, s.read
	w.read = func(_ func(int) bool, emit func(item) error) error {
		if lo == hi {
			return nil
		}
		pos := 0
		if s.readFrom != nil && lo > 0 {
			// Start at the source's image of position lo.
			j0 := lo
			if keep != nil {
				for j, p := 0, 0; j < s.total; j++ {
					if keep(j) {
						if p == lo {
							j0 = j
							break
						}
						p++
					}
				}
			}
			pos = lo
			read = func(keep func(int) bool, emit func(item) error) error { return s.readFrom(j0, keep, emit) }
		}
		inside := func(j int) bool {
			if keep != nil && !keep(j) {
				return false
			}
			pos++
			return pos > lo && pos <= hi
		}
		err := read(inside, func(it item) error {
			if err := emit(it); err != nil {
				return err
			}
			if pos >= hi {
				return errWindowEnd
			}
			return nil
		})
		if err == errWindowEnd {
			return nil
		}
		return err
	}
	return &w
}

// window bounds the images in flight between the reader, the decoders and
// the batch being filled: twice a batch, within 32 MiB of pixels, and at
// least four per core.
func window(batch, size, workers int) int {
	return max(4*workers, min(2*batch, (32<<20)/max(size, 1)))
}

// Scan reads the split and calls fn with its images in order, at most
// batch at a time. Each call's Set holds one batch: N images, their
// Pixels, Labels and IDs (nil for IDX splits, whose images are numbered),
// and the split's name, shape and classes; off is the position in the
// split of the batch's first image. The Set and its slices are reused:
// fn must not keep them after it returns.
//
// Images that cannot be read are skipped and listed (Skipped), unless the
// Stream is strict; then the first is an error. Scan stops at the first
// error of fn, of the source, or of ctx, and returns it.
func (s *Stream) Scan(ctx context.Context, batch int, fn func(off int, b *Set) error) error {
	if batch < 1 {
		return fmt.Errorf("dataset: batch of %d images: want at least 1", batch)
	}
	s.skipped = nil
	if s.decode == nil {
		return s.scanRaw(ctx, batch, fn)
	}
	size := s.channels * s.rows * s.cols
	workers := runtime.GOMAXPROCS(0)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	type job struct {
		seq int
		it  item
		pix []uint8
	}
	type result struct {
		job
		err error
	}
	free := make(chan []uint8, window(batch, size, workers))
	for range cap(free) {
		free <- nil // buffers are made when first used
	}
	jobs := make(chan job, workers)
	results := make(chan result, workers)
	var readErr error
	go func() {
		defer close(jobs)
		seq := 0
		readErr = s.read(s.keep, func(it item) error {
			var pix []uint8
			select {
			case pix = <-free:
			case <-ctx.Done():
				return ctx.Err()
			}
			if pix == nil {
				pix = make([]uint8, size)
			}
			select {
			case jobs <- job{seq, it, pix}:
			case <-ctx.Done():
				return ctx.Err()
			}
			seq++
			return nil
		})
	}()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for j := range jobs {
				err := s.decode(j.it, j.pix)
				select {
				case results <- result{j, err}:
				case <-ctx.Done():
				}
			}
		})
	}
	go func() {
		wg.Wait()
		close(results)
	}()
	// stop cancels the others and waits for them to end.
	stop := func(err error) error {
		cancel()
		for range results {
		}
		return err
	}

	b := &Set{Name: s.name, Split: s.split, Rows: s.rows, Cols: s.cols, Channels: s.channels, Classes: s.classes}
	b.Pixels = make([]uint8, 0, min(batch, s.n)*size)
	off := 0
	flush := func() error {
		if b.N == 0 {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		err := fn(off, b)
		off += b.N
		b.N, b.Pixels, b.Labels, b.IDs = 0, b.Pixels[:0], b.Labels[:0], b.IDs[:0]
		return err
	}
	pending := map[int]result{}
	next := 0
	for r := range results {
		pending[r.seq] = r
		for {
			r, ok := pending[next]
			if !ok {
				break
			}
			delete(pending, next)
			next++
			if r.err != nil {
				skip := Skip{Path: s.where, Err: r.err}
				if r.it.id != "" {
					skip.Path = joinID(s.where, r.it.id)
				}
				if s.strict {
					return stop(fmt.Errorf("dataset: %s: %w (without --strict it would be skipped)", skip.Path, r.err))
				}
				s.skipped = append(s.skipped, skip)
			} else {
				b.Pixels = append(b.Pixels, r.pix...)
				b.Labels = append(b.Labels, r.it.label)
				if r.it.id != "" {
					b.IDs = append(b.IDs, r.it.id)
				}
				b.N++
			}
			free <- r.pix
			if b.N == batch {
				if err := flush(); err != nil {
					return stop(err)
				}
			}
		}
	}
	if readErr != nil {
		return readErr
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := flush(); err != nil {
		return err
	}
	if off == 0 && len(s.skipped) > 0 {
		first := s.skipped[0]
		return fmt.Errorf("dataset: %s: none of the %d pictures of the %s split could be read (the first: %s: %v)", s.where, len(s.skipped), s.split, first.Path, first.Err)
	}
	return nil
}

// scanRaw is Scan for sources whose reader gives the pixels themselves:
// it fills one batch as fn works on the one before.
func (s *Stream) scanRaw(ctx context.Context, batch int, fn func(off int, b *Set) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	size := s.channels * s.rows * s.cols
	free := make(chan *Set, 2)
	for range 2 {
		free <- &Set{Name: s.name, Split: s.split, Rows: s.rows, Cols: s.cols, Channels: s.channels, Classes: s.classes,
			Pixels: make([]uint8, 0, min(batch, s.n)*size)}
	}
	full := make(chan *Set)
	var readErr error
	go func() {
		defer close(full)
		b := <-free
		send := func() error {
			select {
			case full <- b:
			case <-ctx.Done():
				return ctx.Err()
			}
			select {
			case b = <-free:
			case <-ctx.Done():
				return ctx.Err()
			}
			b.N, b.Pixels, b.Labels, b.IDs = 0, b.Pixels[:0], b.Labels[:0], b.IDs[:0]
			return nil
		}
		readErr = s.read(s.keep, func(it item) error {
			b.Pixels = append(b.Pixels, it.raw...)
			b.Labels = append(b.Labels, it.label)
			if it.id != "" {
				b.IDs = append(b.IDs, it.id)
			}
			if b.N++; b.N == batch {
				return send()
			}
			return nil
		})
		if readErr == nil && b.N > 0 {
			readErr = send()
		}
	}()
	off := 0
	for b := range full {
		err := ctx.Err()
		if err == nil {
			err = fn(off, b)
		}
		if err != nil {
			cancel()
			for range full {
			}
			return err
		}
		off += b.N
		free <- b
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return readErr
}

// ReadAll scans the whole split into one Set (see Scan), with the IDX
// files it was read from.
func (s *Stream) ReadAll(ctx context.Context) (*Set, error) {
	size := s.channels * s.rows * s.cols
	all := &Set{Name: s.name, Split: s.split, Rows: s.rows, Cols: s.cols, Channels: s.channels, Classes: s.classes}
	all.Pixels = make([]uint8, 0, s.n*size)
	err := s.Scan(ctx, 4096, func(_ int, b *Set) error {
		all.Pixels = append(all.Pixels, b.Pixels...)
		all.Labels = append(all.Labels, b.Labels...)
		all.IDs = append(all.IDs, b.IDs...)
		all.N += b.N
		return nil
	})
	if err != nil {
		return nil, err
	}
	all.Files = s.files
	return all, nil
}
