package dataset

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/latent-ai/latent/npyarray"
)

// gather scans st with batches of batch images and returns them as one
// Set, checking that each batch starts where the one before ended and
// holds at most batch images.
func gather(t *testing.T, st *Stream, batch int) *Set {
	t.Helper()
	all := &Set{}
	err := st.Scan(context.Background(), batch, func(off int, b *Set) error {
		if off != all.N || b.N < 1 || b.N > batch || len(b.Pixels) != b.N*b.Size() || len(b.Labels) != b.N {
			return fmt.Errorf("batch at %d of %d images, %d pixels, %d labels, after %d images", off, b.N, len(b.Pixels), len(b.Labels), all.N)
		}
		all.Pixels = append(all.Pixels, b.Pixels...)
		all.Labels = append(all.Labels, b.Labels...)
		all.IDs = append(all.IDs, b.IDs...)
		all.N += b.N
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return all
}

// TestStreamIDX checks that scanning an IDX split in batches of any size
// gives Load's images and labels, in order, and the files' checksums.
func TestStreamIDX(t *testing.T) {
	dir := mnistDir(t)
	want, err := Load(MNIST, dir, Test)
	if err != nil {
		t.Fatal(err)
	}
	st, err := OpenIDX(MNIST, dir, Test)
	if err != nil {
		t.Fatal(err)
	}
	if st.Len() != want.N || !slices.Equal(st.Shape(), []int{1, 28, 28}) || !st.Labelled() || st.Format() != FormatIDX {
		t.Fatalf("Len %d, Shape %v, Labelled %v, Format %q", st.Len(), st.Shape(), st.Labelled(), st.Format())
	}
	for _, batch := range []int{1, 333, 10000, 20000} {
		got := gather(t, st, batch)
		if got.N != want.N || !slices.Equal(got.Pixels, want.Pixels) || !slices.Equal(got.Labels, want.Labels) || got.IDs != nil {
			t.Fatalf("batch %d: %d images, other pixels or labels, or IDs", batch, got.N)
		}
	}
	if !slices.Equal(st.Files(), want.Files) {
		t.Errorf("Files %v, want %v", st.Files(), want.Files)
	}
}

// TestStreamFolder writes a PNG tree with a corrupt file and checks that a
// scan gives Open's images, labels and IDs for every batch size, and that
// the corrupt file is skipped, or stops a strict scan.
func TestStreamFolder(t *testing.T) {
	dir := mnistDir(t)
	s, err := Load(MNIST, dir, Test)
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	for i := range 150 {
		writePNG(t, filepath.Join(root, fmt.Sprint(s.Labels[i]), fmt.Sprintf("%05d.png", i)), s.Image(i))
	}
	os.WriteFile(filepath.Join(root, "3", "broken.png"), []byte("\x89PNG\r\n\x1a\nnot really"), 0o644)
	o := OpenOptions{TestFraction: 0.3, Seed: 4}
	opened, err := Open(root, o)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []*Set{opened.Train, opened.Test} {
		st, err := OpenSplit(root, o, want.Split)
		if err != nil {
			t.Fatal(err)
		}
		for _, batch := range []int{1, 7, 64, 1000} {
			got := gather(t, st, batch)
			if got.N != want.N || !slices.Equal(got.Pixels, want.Pixels) || !slices.Equal(got.Labels, want.Labels) || !slices.Equal(got.IDs, want.IDs) {
				t.Fatalf("%s, batch %d: %d images, want %d, or other pixels, labels or IDs", want.Split, batch, got.N, want.N)
			}
		}
		if st.Len() != want.N+len(st.Skipped()) {
			t.Errorf("%s: Len %d, %d read and %d skipped", want.Split, st.Len(), want.N, len(st.Skipped()))
		}
	}
	if len(opened.Skipped) != 1 || filepath.Base(opened.Skipped[0].Path) != "broken.png" {
		t.Errorf("skipped %v, want broken.png", opened.Skipped)
	}
	o.Strict = true
	for _, split := range []string{Train, Test} {
		st, err := OpenSplit(root, o, split)
		if err != nil {
			t.Fatal(err)
		}
		err = st.Scan(context.Background(), 10, func(int, *Set) error { return nil })
		if holds := slices.ContainsFunc(st.keepList(), func(id string) bool { return id == filepath.Join("3", "broken.png") }); holds != (err != nil) {
			t.Errorf("strict %s split: holds broken.png %v, error %v", split, holds, err)
		}
	}
}

// keepList returns the IDs of the images listed in the split, read or not.
func (s *Stream) keepList() []string {
	var ids []string
	s.read(s.keep, func(it item) error {
		ids = append(ids, it.id)
		return nil
	})
	return ids
}

// TestHeldOutIgnoresDecoding checks that the held-out split is drawn over
// the files listed: a file that becomes unreadable leaves every other file
// in its split.
func TestHeldOutIgnoresDecoding(t *testing.T) {
	root := t.TempDir()
	img := make([]float32, Side*Side)
	for i := range 40 {
		img[i] = 1
		writePNG(t, filepath.Join(root, fmt.Sprintf("%02d.png", i)), img)
	}
	before, err := Open(root, OpenOptions{Seed: 9})
	if err != nil {
		t.Fatal(err)
	}
	victim := before.Train.IDs[3]
	os.WriteFile(filepath.Join(root, victim), []byte("gone"), 0o644)
	after, err := Open(root, OpenOptions{Seed: 9})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(after.Test.IDs, before.Test.IDs) || !slices.Equal(after.Train.IDs, slices.DeleteFunc(slices.Clone(before.Train.IDs), func(id string) bool { return id == victim })) {
		t.Errorf("the splits moved: test %v then %v", before.Test.IDs, after.Test.IDs)
	}
}

// TestScanStops checks that a scan stops at fn's first error and at a
// cancelled context, returns that error, and leaves no goroutine behind.
func TestScanStops(t *testing.T) {
	dir := mnistDir(t)
	root := t.TempDir()
	s, err := Load(MNIST, dir, Test)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 60 {
		writePNG(t, filepath.Join(root, fmt.Sprintf("%02d.png", i)), s.Image(i))
	}
	picture, err := OpenSplit(root, OpenOptions{}, Train)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := OpenIDX(MNIST, dir, Train)
	if err != nil {
		t.Fatal(err)
	}
	before := runtime.NumGoroutine()
	stop := errors.New("stop here")
	for name, st := range map[string]*Stream{"pictures": picture, "IDX": idx} {
		calls := 0
		err := st.Scan(context.Background(), 5, func(int, *Set) error {
			if calls++; calls == 3 {
				return stop
			}
			return nil
		})
		if !errors.Is(err, stop) || calls != 3 {
			t.Errorf("%s: error %v after %d calls, want %v after 3", name, err, calls, stop)
		}
		ctx, cancel := context.WithCancel(context.Background())
		calls = 0
		err = st.Scan(ctx, 5, func(int, *Set) error {
			if calls++; calls == 2 {
				cancel()
			}
			return nil
		})
		if !errors.Is(err, context.Canceled) || calls != 2 {
			t.Errorf("%s: cancelled scan: error %v after %d calls", name, err, calls)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines after the scans, %d before", n, before)
	}
}

// BenchmarkScanMNIST reads MNIST's 70,000 images through a Stream, from the
// IDX files and from the same images as a PNG tree in ImageFolder layout
// (written once, in the benchmark's own folder), and reports images/s:
//
//	go test ./dataset -run - -bench ScanMNIST -benchtime 3x
func BenchmarkScanMNIST(b *testing.B) {
	dir := mnistDir(b)
	root := b.TempDir()
	for _, split := range []string{Train, Test} {
		s, err := Load(MNIST, dir, split)
		if err != nil {
			b.Fatal(err)
		}
		var wg sync.WaitGroup
		for w := range runtime.GOMAXPROCS(0) {
			wg.Go(func() {
				for i := w; i < s.N; i += runtime.GOMAXPROCS(0) {
					img := image.NewGray(image.Rect(0, 0, Side, Side))
					copy(img.Pix, s.Pixels[i*784:(i+1)*784])
					var buf bytes.Buffer
					png.Encode(&buf, img)
					p := filepath.Join(root, split, fmt.Sprint(s.Labels[i]), fmt.Sprintf("%05d.png", i))
					os.MkdirAll(filepath.Dir(p), 0o755)
					os.WriteFile(p, buf.Bytes(), 0o644)
				}
			})
		}
		wg.Wait()
	}
	for _, tc := range []struct {
		name string
		open func(split string) (*Stream, error)
	}{
		{"idx", func(split string) (*Stream, error) { return OpenIDX(MNIST, dir, split) }},
		{"png", func(split string) (*Stream, error) { return OpenSplit(root, OpenOptions{}, split) }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			n := 0
			for b.Loop() {
				for _, split := range []string{Train, Test} {
					st, err := tc.open(split)
					if err != nil {
						b.Fatal(err)
					}
					if err := st.Scan(context.Background(), 1000, func(_ int, s *Set) error { n += s.N; return nil }); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "images/s")
		})
	}
}

// TestWindows reads an IDX split, a folder and an .npy in windows and checks
// that the windows, put end to end, are the whole split, in order.
func TestWindows(t *testing.T) {
	dir := mnistDir(t)
	s, err := Load(MNIST, dir, Test)
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	for i := range 50 {
		writePNG(t, filepath.Join(root, "pics", fmt.Sprint(s.Labels[i]), fmt.Sprintf("%05d.png", i)), s.Image(i))
	}
	var npy bytes.Buffer
	npyarray.WriteHeader(&npy, npyarray.Uint8, []int{300, Side, Side})
	npy.Write(s.Pixels[:300*784])
	os.WriteFile(filepath.Join(root, "x.npy"), npy.Bytes(), 0o644)
	streams := map[string]func() (*Stream, error){
		"idx":    func() (*Stream, error) { return OpenIDX(MNIST, dir, Test) },
		"folder": func() (*Stream, error) { return OpenSplit(filepath.Join(root, "pics"), OpenOptions{Seed: 2}, Train) },
		"npy":    func() (*Stream, error) { return OpenSplit(filepath.Join(root, "x.npy"), OpenOptions{Seed: 2}, Test) },
	}
	for name, open := range streams {
		st, err := open()
		if err != nil {
			t.Fatal(err)
		}
		whole := gather(t, st, 64)
		parts := &Set{}
		for _, edges := range [][2]int{{-5, 7}, {7, 7}, {7, 8}, {8, st.Len() / 2}, {st.Len() / 2, st.Len() + 9}} {
			w := st.Window(edges[0], edges[1])
			got := gather(t, w, 5)
			if got.N != w.Len() {
				t.Errorf("%s window %v: %d images, Len %d", name, edges, got.N, w.Len())
			}
			parts.Pixels = append(parts.Pixels, got.Pixels...)
			parts.Labels = append(parts.Labels, got.Labels...)
			parts.IDs = append(parts.IDs, got.IDs...)
			parts.N += got.N
		}
		if parts.N != whole.N || !slices.Equal(parts.Pixels, whole.Pixels) || !slices.Equal(parts.Labels, whole.Labels) || !slices.Equal(parts.IDs, whole.IDs) {
			t.Errorf("%s: the windows give %d images, the split %d, or other pixels, labels or IDs", name, parts.N, whole.N)
		}
	}
}
