package dataset

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
)

// mirror is a test HTTP server on the loopback interface that serves
// files by name under /mnist/ and counts the requests.
type mirror struct {
	*httptest.Server
	files    map[string][]byte
	requests atomic.Int64
}

func newMirror(t *testing.T, files map[string][]byte) *mirror {
	t.Helper()
	m := &mirror{files: files}
	m.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.requests.Add(1)
		b, ok := m.files[strings.TrimPrefix(r.URL.Path, "/mnist/")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(b)
	}))
	t.Cleanup(m.Close)
	return m
}

// base returns the base URL of the mirror's files.
func (m *mirror) base() string { return m.URL + "/mnist/" }

// realFiles reads the four real MNIST .gz files.
func realFiles(t *testing.T) map[string][]byte {
	t.Helper()
	dir := mnistDir(t)
	files := make(map[string][]byte)
	for _, base := range fileNames {
		b, err := os.ReadFile(filepath.Join(dir, base+".gz"))
		if err != nil {
			t.Fatal(err)
		}
		files[base+".gz"] = b
	}
	return files
}

func TestEnsureDownloads(t *testing.T) {
	good := newMirror(t, realFiles(t))
	empty := newMirror(t, nil)
	dir := filepath.Join(t.TempDir(), "data", "mnist") // created by Ensure
	var progress bytes.Buffer
	d := &Downloader{Mirrors: []string{empty.base(), good.base()}, Client: good.Client(), Progress: &progress}

	if err := d.Ensure(context.Background(), MNIST, dir); err != nil {
		t.Fatal(err)
	}
	want := []string{"t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"}
	if got := dirNames(t, dir); !slices.Equal(got, want) {
		t.Errorf("folder holds %q, want %q", got, want)
	}
	if err := Verify(MNIST, dir); err != nil {
		t.Error(err)
	}
	s, err := Load(MNIST, dir, Test)
	if err != nil {
		t.Fatal(err)
	}
	if s.N != 10000 {
		t.Errorf("got %d test images, want 10000", s.N)
	}
	if got := empty.requests.Load(); got != 4 {
		t.Errorf("first mirror got %d requests, want 4", got)
	}
	if got := strings.Count(progress.String(), "MD5 ok"); got != 4 {
		t.Errorf("progress reports %d verified files, want 4:\n%s", got, progress.String())
	}
	if !strings.Contains(progress.String(), "404 Not Found") {
		t.Errorf("progress does not report the failed mirror:\n%s", progress.String())
	}

	// With every file there, Ensure asks for nothing.
	before := good.requests.Load()
	if err := d.Ensure(context.Background(), MNIST, dir); err != nil {
		t.Fatal(err)
	}
	if got := good.requests.Load() - before; got != 0 {
		t.Errorf("Ensure made %d requests with every file present", got)
	}
}

// TestEnsureLeavesRealDataAlone checks that Ensure on the read-only real
// folder, where every file is present, neither writes nor downloads.
func TestEnsureLeavesRealDataAlone(t *testing.T) {
	dir := mnistDir(t)
	m := newMirror(t, nil)
	d := &Downloader{Mirrors: []string{m.base()}, Client: m.Client()}
	before := dirNames(t, dir)
	if err := d.Ensure(context.Background(), MNIST, dir); err != nil {
		t.Fatal(err)
	}
	if m.requests.Load() != 0 {
		t.Error("Ensure downloaded files that are present")
	}
	if after := dirNames(t, dir); !slices.Equal(before, after) {
		t.Errorf("folder changed from %q to %q", before, after)
	}
}

// TestEnsureRejectsBadDownloads serves a bad t10k-labels file and checks
// that it is rejected and that nothing is left in the folder.
func TestEnsureRejectsBadDownloads(t *testing.T) {
	files := realFiles(t)
	labelsGz := files["t10k-labels-idx1-ubyte.gz"]
	labels, err := ReadLabels(bytes.NewReader(labelsGz))
	if err != nil {
		t.Fatal(err)
	}
	changed := bytes.Clone(labels)
	changed[123] = (changed[123] + 1) % 10

	tests := []struct {
		name string
		body []byte
		want string
	}{
		{"one label changed", gzipBytes(t, idxLabels(changed)), "MD5 of the decompressed content is"},
		{"one label changed, raw", idxLabels(changed), "MD5 of the decompressed content is"},
		{"truncated gzip", labelsGz[:len(labelsGz)/2], "truncated"},
		{"gzip trailer cut", labelsGz[:len(labelsGz)-4], "truncated"},
		{"trailing bytes", append(bytes.Clone(labelsGz), 0, 0, 0, 0), "trailing data after the gzip stream"},
		{"too long", gzipBytes(t, append(idxLabels(labels), 1)), "decompressed content is longer than the 10008 bytes expected"},
		{"an HTML page", []byte("<html>Moved</html>"), "decompressed content is 18 bytes"},
		{"empty", nil, "decompressed content is 0 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := newMirror(t, map[string][]byte{"t10k-labels-idx1-ubyte.gz": tt.body})
			dir := t.TempDir()
			for _, base := range fileNames[:3] {
				copyFile(t, filepath.Join(mnistDir(t), base+".gz"), dir)
			}
			before := dirNames(t, dir)
			d := &Downloader{Mirrors: []string{bad.base()}, Client: bad.Client()}
			err := d.Ensure(context.Background(), MNIST, dir)
			wantError(t, err, tt.want, "t10k-labels-idx1-ubyte.gz", dir)
			if after := dirNames(t, dir); !slices.Equal(before, after) {
				t.Errorf("folder holds %q after a failed download, want %q", after, before)
			}
		})
	}
}

func TestEnsureFallsBack(t *testing.T) {
	files := realFiles(t)
	bad := newMirror(t, map[string][]byte{"t10k-labels-idx1-ubyte.gz": files["train-labels-idx1-ubyte.gz"]})
	good := newMirror(t, files)
	dir := t.TempDir()
	for _, base := range fileNames[:3] {
		copyFile(t, filepath.Join(mnistDir(t), base+".gz"), dir)
	}
	var progress bytes.Buffer
	d := &Downloader{Mirrors: []string{bad.base(), good.base()}, Client: good.Client(), Progress: &progress}
	if err := d.Ensure(context.Background(), MNIST, dir); err != nil {
		t.Fatal(err)
	}
	if bad.requests.Load() != 1 || good.requests.Load() != 1 {
		t.Errorf("requests: %d to the bad mirror, %d to the good one, want 1 and 1", bad.requests.Load(), good.requests.Load())
	}
	if !strings.Contains(progress.String(), "decompressed content is longer than the 10008 bytes expected") {
		t.Errorf("progress does not report the bad file:\n%s", progress.String())
	}
	if err := Verify(MNIST, dir); err != nil {
		t.Error(err)
	}
}

func TestEnsureNoNetwork(t *testing.T) {
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close() // nothing listens at its address any more
	parent := t.TempDir()
	dir := filepath.Join(parent, "data", "mnist")
	d := &Downloader{Mirrors: []string{down.URL + "/a/", down.URL + "/b/"}}
	err := d.Ensure(context.Background(), MNIST, dir)
	wantError(t, err, "cannot download", "without network access", dir, down.URL+"/a/", down.URL+"/b/",
		"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz",
		"--data or $LATENT_MNIST")
	if err != nil && strings.Contains(err.Error(), "\n") {
		t.Errorf("error %q is more than one line", err)
	}
	// The folders Ensure created for the download are gone again.
	if names := dirNames(t, parent); len(names) != 0 {
		t.Errorf("%s holds %q after failed downloads, want nothing", parent, names)
	}

	// A folder that existed stays, empty.
	dir = t.TempDir()
	err = d.Ensure(context.Background(), MNIST, dir)
	wantError(t, err, "cannot download", dir)
	if names := dirNames(t, dir); len(names) != 0 {
		t.Errorf("folder holds %q after failed downloads", names)
	}
}

func TestEnsureCanceled(t *testing.T) {
	m := newMirror(t, realFiles(t))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dir := t.TempDir()
	d := &Downloader{Mirrors: []string{m.base()}, Client: m.Client()}
	err := d.Ensure(ctx, MNIST, dir)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error = %v, want context.Canceled", err)
	}
	if names := dirNames(t, dir); len(names) != 0 {
		t.Errorf("folder holds %q after a canceled download", names)
	}
}

// TestEnsureFashionDebianFolder checks that Ensure does not download into
// the folder of the Debian package but says to install the package.
func TestEnsureFashionDebianFolder(t *testing.T) {
	t.Setenv(EnvData, "")
	m := newMirror(t, nil)
	old := fashionDir
	fashionDir = t.TempDir()
	defer func() { fashionDir = old }()

	d := &Downloader{Mirrors: []string{m.base()}, Client: m.Client()}
	err := d.Ensure(context.Background(), FashionMNIST, Dir(FashionMNIST, ""))
	wantError(t, err, "apt-get install dataset-fashion-mnist", fashionDir, "train-images-idx3-ubyte.gz")
	if m.requests.Load() != 0 {
		t.Error("Ensure downloaded into the Debian package's folder")
	}
	_, err = Load(FashionMNIST, fashionDir, Train)
	wantError(t, err, "apt-get install dataset-fashion-mnist")
}

func TestEnsureBadArguments(t *testing.T) {
	wantError(t, Ensure(context.Background(), "cifar", t.TempDir(), nil), `unknown data set "cifar"`)
	wantError(t, Ensure(context.Background(), MNIST, "", nil), "empty data folder name")
	wantError(t, Verify("cifar", t.TempDir()), `unknown data set "cifar"`)
}
