// Package dataset reads the MNIST and Fashion-MNIST data sets from IDX
// files, finds the folder that holds them, downloads missing files and
// verifies their checksums.
//
// The IDX readers accept raw and gzip-compressed input; compression is
// detected from the gzip magic bytes, not from the file name. They check
// the header, bound every size the header claims, and require the data to
// end exactly where the header says it ends, so a truncated or padded file
// is an error rather than a silently wrong data set.
package dataset

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/gzip"
	"io"
	"os"
)

// Magic numbers of the IDX files this package reads: unsigned bytes
// (type 0x08) in three dimensions for images and one for labels.
const (
	ImagesMagic = 0x00000803
	LabelsMagic = 0x00000801
)

// Limits on what an IDX header may claim. They keep a damaged or hostile
// header from causing a huge allocation: memory grows only as data arrives.
const (
	// MaxRecords is the largest number of images or labels accepted.
	MaxRecords = 10_000_000
	// MaxSide is the largest number of rows or columns of an image.
	MaxSide = 4096
	// MaxImageBytes is the largest total pixel count of an images file.
	MaxImageBytes = 1<<31 - 1
)

// ErrFormat is wrapped by every error that reports malformed input: a bad
// magic number, an out-of-range dimension, truncated or trailing data, or a
// corrupt gzip stream. Errors from the underlying reader are not wrapped.
var ErrFormat = errors.New("malformed IDX data")

// readChunk is the initial capacity of a data buffer and the size of the
// chunks that Load converts; buffers grow by doubling as data arrives.
const readChunk = 64 << 10

func formatError(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrFormat}, args...)...)
}

// decompress returns a reader of the content of r, gunzipped when r starts
// with the gzip magic bytes 1f 8b, and whether it was gzip-compressed.
func decompress(r io.Reader) (io.Reader, bool, error) { return decompressWith(r, newBody) }

// decompressWith is decompress with the members' bodies inflated by what
// fastBody returns, or by klauspost/compress where it returns nil.
func decompressWith(r io.Reader, fastBody func(*bufio.Reader) memberBody) (io.Reader, bool, error) {
	br := bufio.NewReaderSize(r, readChunk)
	magic, err := br.Peek(2)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, false, fmt.Errorf("read: %w", err)
	}
	if len(magic) < 2 || magic[0] != 0x1f || magic[1] != 0x8b {
		// Not gzip; a short input is reported by the header parser.
		return br, false, nil
	}
	zr, err := gzip.NewReader(br)
	if err != nil {
		return nil, true, readError(err, "gzip header")
	}
	zr.Multistream(false)
	g := &gzipReader{br: br, zr: zr, body: zr}
	if fast := fastBody(br); fast != nil {
		g.body, g.fast = fast, fast
	}
	return g, true, nil
}

// memberBody inflates the body of one gzip member whose header has been
// read from the bufio.Reader it was made with, up to the end of the
// member's trailer, then returns io.EOF; reset readies it for the next
// member.
type memberBody interface {
	io.Reader
	reset()
}

// gzipReader reads a gzip stream of one or more members, like gzip.Reader
// in multistream mode, but reports bytes after the last member that do not
// start another member as trailing data rather than as a truncated header.
// zr parses each member's header; body inflates the member: zr itself, or
// fast, the faster decoder of this build (Inflater) when it has one.
type gzipReader struct {
	br   *bufio.Reader
	zr   *gzip.Reader
	body io.Reader
	fast memberBody
}

func (g *gzipReader) Read(p []byte) (int, error) {
	for {
		n, err := g.body.Read(p)
		if err != io.EOF {
			return n, err
		}
		if n > 0 {
			// End of a member: look for another on the next call.
			return n, nil
		}
		next, err := g.br.Peek(2)
		switch {
		case len(next) == 0 && errors.Is(err, io.EOF):
			return 0, io.EOF
		case len(next) == 2 && next[0] == 0x1f && next[1] == 0x8b:
			if err := g.zr.Reset(g.br); err != nil {
				return 0, err
			}
			g.zr.Multistream(false)
			if g.fast != nil {
				g.fast.reset()
			}
		case err != nil && !errors.Is(err, io.EOF):
			return 0, err
		default:
			return 0, formatError("trailing data after the gzip stream")
		}
	}
}

// readError classifies an error met while reading what: the end of input
// and gzip damage are format errors, anything else is passed on.
func readError(err error, what string) error {
	var corrupt flate.CorruptInputError
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return formatError("truncated %s: the input ends early", what)
	case errors.Is(err, gzip.ErrHeader), errors.Is(err, gzip.ErrChecksum), errors.As(err, &corrupt):
		return formatError("corrupt gzip data in %s: %v", what, err)
	}
	return fmt.Errorf("read %s: %w", what, err)
}

// readHeader reads an IDX header with magic number want and returns its
// dimensions. kind names the file type in messages ("images", "labels").
func readHeader(r io.Reader, want uint32, kind string) ([]int, error) {
	var b [4]byte
	if n, err := io.ReadFull(r, b[:]); err != nil {
		if n == 0 && errors.Is(err, io.EOF) {
			return nil, formatError("empty input: no IDX %s header", kind)
		}
		return nil, readError(err, "header")
	}
	got := binary.BigEndian.Uint32(b[:])
	if got != want {
		return nil, magicError(got, want, kind)
	}
	dims := make([]int, want&0xff)
	for i := range dims {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return nil, readError(err, "header")
		}
		dims[i] = int(binary.BigEndian.Uint32(b[:]))
	}
	if dims[0] > MaxRecords {
		return nil, formatError("header claims %d %s, more than the limit of %d", dims[0], kind, MaxRecords)
	}
	return dims, nil
}

func magicError(got, want uint32, kind string) error {
	switch {
	case got>>16 != 0:
		return formatError("bad magic number 0x%08x, want 0x%08x: not an IDX file", got, want)
	case got>>8&0xff != 0x08:
		return formatError("IDX element type 0x%02x, want 0x08 (unsigned byte)", got>>8&0xff)
	case got == ImagesMagic || got == LabelsMagic:
		other := "labels"
		if got == ImagesMagic {
			other = "images"
		}
		return formatError("magic number 0x%08x is that of an IDX %s file, want 0x%08x (%s): are the images and labels files mixed up?", got, other, want, kind)
	}
	return formatError("IDX file with %d dimensions (magic number 0x%08x), want 0x%08x (%s)", got&0xff, got, want, kind)
}

// readImageHeader reads and checks the header of an images file.
func readImageHeader(r io.Reader) (n, rows, cols int, err error) {
	dims, err := readHeader(r, ImagesMagic, "images")
	if err != nil {
		return 0, 0, 0, err
	}
	n, rows, cols = dims[0], dims[1], dims[2]
	if rows < 1 || rows > MaxSide || cols < 1 || cols > MaxSide {
		return 0, 0, 0, formatError("header claims %dx%d images, want 1 to %d rows and columns", rows, cols, MaxSide)
	}
	if int64(n)*int64(rows)*int64(cols) > MaxImageBytes {
		return 0, 0, 0, formatError("header claims %d images of %dx%d, more than the limit of %d pixels", n, rows, cols, MaxImageBytes)
	}
	return n, rows, cols, nil
}

// readData reads exactly size bytes from r. It allocates only as data
// arrives, so a header that claims more than the input holds costs little.
func readData(r io.Reader, size int) ([]byte, error) {
	buf := make([]byte, 0, min(size, readChunk))
	for len(buf) < size {
		if len(buf) == cap(buf) {
			grown := make([]byte, len(buf), min(size, 2*cap(buf)))
			copy(grown, buf)
			buf = grown
		}
		k, err := io.ReadFull(r, buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+k]
		if err != nil {
			return buf, err
		}
	}
	return buf, nil
}

// dataError reports a failure to read the size data bytes that the header
// claims, of which got arrived.
func dataError(err error, got, size int, claim string) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return formatError("truncated data: the header claims %s (%d bytes of data) but only %d bytes follow", claim, size, got)
	}
	return readError(err, "data")
}

// expectEOF checks that r has nothing left after the last record. For a
// gzip stream, reaching the end also verifies its checksum.
func expectEOF(r io.Reader, claim string) error {
	var b [1]byte
	n, err := io.ReadFull(r, b[:])
	if n > 0 {
		const limit = 1 << 20
		extra, _ := io.Copy(io.Discard, io.LimitReader(r, limit))
		if extra >= limit {
			return formatError("trailing data after the %s that the header claims: more than %d extra bytes", claim, limit)
		}
		return formatError("trailing data after the %s that the header claims: %d extra bytes", claim, extra+1)
	}
	if errors.Is(err, io.EOF) {
		return nil
	}
	return readError(err, "end of data")
}

// ReadImages reads an IDX images file (magic 0x00000803, unsigned bytes,
// dimensions n, rows, cols), raw or gzip-compressed, from r. It returns the
// pixels row-major, image after image: len(pix) == n*rows*cols. It reads r
// to the end and fails if the data is shorter or longer than the header
// claims. Malformed input gives an error that wraps ErrFormat.
func ReadImages(r io.Reader) (n, rows, cols int, pix []uint8, err error) {
	d, _, err := decompress(r)
	if err != nil {
		return 0, 0, 0, nil, err
	}
	n, rows, cols, err = readImageHeader(d)
	if err != nil {
		return 0, 0, 0, nil, err
	}
	claim := fmt.Sprintf("%d images of %dx%d", n, rows, cols)
	size := n * rows * cols
	pix, err = readData(d, size)
	if err != nil {
		return 0, 0, 0, nil, dataError(err, len(pix), size, claim)
	}
	if err := expectEOF(d, claim); err != nil {
		return 0, 0, 0, nil, err
	}
	return n, rows, cols, pix, nil
}

// ReadLabels reads an IDX labels file (magic 0x00000801, unsigned bytes,
// one dimension), raw or gzip-compressed, from r and returns the labels.
// It does not check their range. It reads r to the end and fails if the
// data is shorter or longer than the header claims. Malformed input gives
// an error that wraps ErrFormat.
func ReadLabels(r io.Reader) ([]uint8, error) {
	d, _, err := decompress(r)
	if err != nil {
		return nil, err
	}
	dims, err := readHeader(d, LabelsMagic, "labels")
	if err != nil {
		return nil, err
	}
	n := dims[0]
	claim := fmt.Sprintf("%d labels", n)
	labels, err := readData(d, n)
	if err != nil {
		return nil, dataError(err, len(labels), n, claim)
	}
	if err := expectEOF(d, claim); err != nil {
		return nil, err
	}
	return labels, nil
}

// ReadImagesFile is ReadImages on the file at path. Its errors name the
// file and say what to do about it.
func ReadImagesFile(path string) (n, rows, cols int, pix []uint8, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, 0, nil, fmt.Errorf("dataset: %w", err)
	}
	defer f.Close()
	n, rows, cols, pix, err = ReadImages(f)
	if err != nil {
		return 0, 0, 0, nil, fileError(path, err)
	}
	return n, rows, cols, pix, nil
}

// ReadLabelsFile is ReadLabels on the file at path. Its errors name the
// file and say what to do about it.
func ReadLabelsFile(path string) ([]uint8, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	defer f.Close()
	labels, err := ReadLabels(f)
	if err != nil {
		return nil, fileError(path, err)
	}
	return labels, nil
}

// fileError adds the file name to err and, for damaged files, the remedy.
func fileError(path string, err error) error {
	if errors.Is(err, ErrFormat) {
		return fmt.Errorf("dataset: %s: %w; the file is damaged or not the right file: delete it so that it is downloaded again, or re-download it", path, err)
	}
	return fmt.Errorf("dataset: %s: %w", path, err)
}
