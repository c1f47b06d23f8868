package dataset

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/latent-ai/latent/atomicfile"
)

// checksums holds, for each data set and file, the MD5 of the
// decompressed content. The MNIST values are the canonical ones; the
// Fashion-MNIST values are those of the files that its authors publish.
var checksums = map[string]map[string]string{
	MNIST: {
		"train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
		"train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
		"t10k-images-idx3-ubyte":  "2646ac647ad5339dbf082846283269ea",
		"t10k-labels-idx1-ubyte":  "27ae3e4e09519cfbb04c329615203637",
	},
	FashionMNIST: {
		"train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
		"train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
		"t10k-images-idx3-ubyte":  "8181f5470baa50b63fa0f6fddb340f0a",
		"t10k-labels-idx1-ubyte":  "15d484375f8d13e6eb1aabb0c3f46965",
	},
}

// crc32s holds, for each data set and file, the CRC-32 (IEEE) of the
// decompressed content: what a Stream that skips the MD5 (Stream.SkipMD5)
// checks an images file against to refuse another data set's.
var crc32s = map[string]map[string]string{
	MNIST: {
		"train-images-idx3-ubyte": "e9f4d8b3",
		"t10k-images-idx3-ubyte":  "91373bdf",
	},
	FashionMNIST: {
		"train-images-idx3-ubyte": "b4f29f28",
		"t10k-images-idx3-ubyte":  "678fe0b1",
	},
}

// sizes holds the decompressed size of each file, the same for both data
// sets: a 16-byte header and 784 bytes an image, or an 8-byte header and a
// byte a label.
var sizes = map[string]int64{
	"train-images-idx3-ubyte": 16 + 60000*Side*Side,
	"train-labels-idx1-ubyte": 8 + 60000,
	"t10k-images-idx3-ubyte":  16 + 10000*Side*Side,
	"t10k-labels-idx1-ubyte":  8 + 10000,
}

// maxDownload bounds the bytes read from one HTTP response; the largest
// real file is about 26 MB compressed.
const maxDownload = 128 << 20

// Mirrors returns the base URLs, in the order tried, from which Ensure
// downloads the data set name: the mirrors that torchvision uses for
// MNIST, and the authors' site for Fashion-MNIST. It returns nil for an
// unknown name.
func Mirrors(name string) []string {
	switch name {
	case MNIST:
		return []string{
			"https://ossci-datasets.s3.amazonaws.com/mnist/",
			"http://yann.lecun.com/exdb/mnist/",
		}
	case FashionMNIST:
		return []string{"http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"}
	}
	return nil
}

// defaultClient bounds a whole download, so that a stalled server cannot
// hang Ensure forever when the caller's context has no deadline.
var defaultClient = &http.Client{Timeout: 15 * time.Minute}

// A Downloader fetches missing data set files. Its zero value downloads
// from Mirrors(name) with a default HTTP client and reports nothing.
type Downloader struct {
	// Mirrors are base URLs, tried in order; a file's URL is the base URL
	// followed by the file name with .gz. Nil means Mirrors(name).
	Mirrors []string
	// Client makes the requests. Nil means a client with a 15-minute
	// timeout a request.
	Client *http.Client
	// Progress, if not nil, receives a line for each download attempt
	// and its outcome.
	Progress io.Writer
}

// Ensure is a Downloader with default mirrors and client, reporting to
// progress (which may be nil), calling Ensure.
func Ensure(ctx context.Context, name, dir string, progress io.Writer) error {
	d := &Downloader{Progress: progress}
	return d.Ensure(ctx, name, dir)
}

// Ensure makes sure that dir holds the four files of the data set name
// ("mnist" or "fashion-mnist"). Files already there, with or without .gz,
// are left alone (see Verify to check them). A missing file is downloaded
// from the mirrors in turn, and kept only if the MD5 of its decompressed
// content is the canonical one: it is written to a temporary file in dir,
// synced and renamed, so dir never holds a partial or unverified file. The
// folder is created if needed, and removed again, with any parents Ensure
// created, if no file could be downloaded into it. Ensure does not
// download into the folder of Debian's package dataset-fashion-mnist; it
// says to install it. Errors are one line and say what to do.
func (d *Downloader) Ensure(ctx context.Context, name, dir string) (err error) {
	if err := checkName(name); err != nil {
		return err
	}
	if dir == "" {
		return errors.New("dataset: empty data folder name")
	}
	var missing []string
	for _, base := range fileNames {
		path, err := findFile(dir, base)
		if err != nil {
			return err
		}
		if path == "" {
			missing = append(missing, base)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if name == FashionMNIST && filepath.Clean(dir) == filepath.Clean(fashionDir) {
		_, err := findFiles(name, dir, fileNames...)
		return err
	}
	created := atomicfile.MissingDirs(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("dataset: cannot create the data folder: %w; create it, or name another with --data or $%s", err, EnvDir(name))
	}
	defer func() {
		if err != nil {
			for _, c := range created {
				os.Remove(c) // only if still empty
			}
		}
	}()
	mirrors := d.Mirrors
	if mirrors == nil {
		mirrors = Mirrors(name)
	}
	for _, base := range missing {
		if err := d.fetch(ctx, name, dir, base, mirrors); err != nil {
			return err
		}
	}
	return nil
}

// fetch downloads base.gz into dir from the first mirror that serves it
// with the right checksum.
func (d *Downloader) fetch(ctx context.Context, name, dir, base string, mirrors []string) error {
	var errs []error
	for _, mirror := range mirrors {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("dataset: downloading %s into %s: %w", base, dir, err)
		}
		url := strings.TrimSuffix(mirror, "/") + "/" + base + ".gz"
		d.progressf("downloading %s\n", url)
		start := time.Now()
		n, path, err := d.fetchURL(ctx, url, name, dir, base)
		if err != nil {
			d.progressf("  failed: %v\n", err)
			errs = append(errs, err)
			continue
		}
		d.progressf("  saved %s (%d bytes, MD5 ok, %.1fs)\n", path, n, time.Since(start).Seconds())
		return nil
	}
	if len(mirrors) == 0 {
		errs = append(errs, errors.New("no mirrors to download from"))
	}
	return fmt.Errorf("dataset: cannot download %s into %s (%w); without network access, %s, or name the folder that holds them with --data or $%s",
		base+".gz", dir, joined(errs), copyHint(name, dir), EnvDir(name))
}

// joined is errors.Join on one line: the messages separated by "; ".
type joined []error

func (j joined) Error() string {
	var b strings.Builder
	for i, err := range j {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(err.Error())
	}
	return b.String()
}

func (j joined) Unwrap() []error { return j }

func (d *Downloader) progressf(format string, args ...any) {
	if d.Progress != nil {
		fmt.Fprintf(d.Progress, format, args...)
	}
}

// fetchURL downloads url into dir as base.gz (or base, if the server sends
// it uncompressed) after checking the decompressed content against the
// known size and MD5. It returns the bytes received and the saved path.
// On error nothing is left in dir.
func (d *Downloader) fetchURL(ctx context.Context, url, name, dir, base string) (n int64, path string, err error) {
	client := d.Client
	if client == nil {
		client = defaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, "", fmt.Errorf("GET %s: %s", url, resp.Status)
	}

	tmp, err := os.CreateTemp(dir, "."+base+".*.part")
	if err != nil {
		return 0, "", fmt.Errorf("cannot write into the data folder: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()

	// Everything read from the body goes to the temporary file; the
	// decompressed content goes to the hash.
	counter := &countWriter{w: tmp}
	body := io.TeeReader(io.LimitReader(resp.Body, maxDownload), counter)
	sum, gzipped, err := hashContent(body, sizes[base])
	if err != nil {
		return 0, "", fmt.Errorf("%s: %w", url, err)
	}
	if _, err := io.Copy(io.Discard, body); err != nil {
		return 0, "", fmt.Errorf("%s: %w", url, err)
	}
	if counter.err != nil {
		return 0, "", fmt.Errorf("cannot write into the data folder: %w", counter.err)
	}
	if want := checksums[name][base]; sum != want {
		return 0, "", fmt.Errorf("%s: MD5 of the decompressed content is %s, want %s: the mirror serves a damaged or different file", url, sum, want)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return 0, "", fmt.Errorf("cannot write into the data folder: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return 0, "", fmt.Errorf("cannot write into the data folder: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return 0, "", fmt.Errorf("cannot write into the data folder: %w", err)
	}
	path = filepath.Join(dir, base)
	if gzipped {
		path += ".gz"
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return 0, "", fmt.Errorf("cannot write into the data folder: %w", err)
	}
	syncDir(dir)
	return counter.n, path, nil
}

// countWriter writes to w, counting the bytes and keeping the first error
// instead of returning it, so that a full disk is reported as such rather
// than as a broken download.
type countWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (c *countWriter) Write(p []byte) (int, error) {
	if c.err == nil {
		var k int
		k, c.err = c.w.Write(p)
		c.n += int64(k)
	}
	return len(p), nil
}

// syncDir flushes the directory entry of a renamed file. Some systems
// cannot sync a directory; the rename has happened anyway.
func syncDir(dir string) {
	if f, err := os.Open(dir); err == nil {
		f.Sync()
		f.Close()
	}
}

// hashContent returns the hex MD5 of the content of r, decompressed if it
// is gzip, and whether it was. The content must be exactly size bytes; r
// is read to its end so that a gzip checksum is verified.
func hashContent(r io.Reader, size int64) (string, bool, error) {
	d, gzipped, err := decompress(r)
	if err != nil {
		return "", gzipped, err
	}
	h := md5.New()
	n, err := io.Copy(h, io.LimitReader(d, size+1))
	if err != nil {
		return "", gzipped, readError(err, "data")
	}
	if n > size {
		return "", gzipped, formatError("decompressed content is longer than the %d bytes expected", size)
	}
	if n < size {
		return "", gzipped, formatError("decompressed content is %d bytes, want %d", n, size)
	}
	if err := expectEOF(d, "content"); err != nil {
		return "", gzipped, err
	}
	return hex.EncodeToString(h.Sum(nil)), gzipped, nil
}

// Verify checks that dir holds the four files of the data set name
// ("mnist" or "fashion-mnist"), with or without .gz, and that the MD5 of
// the decompressed content of each is the canonical one. It reports every
// missing or damaged file, each error naming the file and what to do.
func Verify(name, dir string) error {
	if err := checkName(name); err != nil {
		return err
	}
	paths, err := findFiles(name, dir, fileNames...)
	if err != nil {
		return err
	}
	var errs []error
	for i, base := range fileNames {
		if err := verifyFile(paths[i], checksums[name][base], sizes[base]); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func verifyFile(path, want string, size int64) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("dataset: %w", err)
	}
	defer f.Close()
	sum, _, err := hashContent(f, size)
	if err != nil {
		return fileError(path, err)
	}
	if sum != want {
		return fmt.Errorf("dataset: %s: MD5 of the decompressed content is %s, want %s: the file is damaged or not the right file; delete it so that it is downloaded again", path, sum, want)
	}
	return nil
}
