package inference_test

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latent-ai/latent/inference"
	"github.com/latent-ai/latent/onnxmeta"
)

// abuseCall is one kind of call in TestAbuseManyGoroutines. run makes the
// call and returns nil when it behaved: a valid call gave exactly the result
// computed before the goroutines started, an invalid one the expected error.
type abuseCall struct {
	name  string
	valid bool
	run   func() error
}

// TestAbuseManyGoroutines shares one model among 16 goroutines that make
// 10,000 calls in all, valid and invalid mixed, after a warm-up of 1,000.
// Valid calls must give the results computed one at a time before, bit for
// bit; invalid ones must return the expected error; nothing may panic. A
// second instance is closed while calls to it are in flight, a third is
// closed from the start. The resident memory may grow by at most 32 MiB
// from the end of the warm-up to the end, and the number of goroutines must
// come back to where it was. Run it with -race.
func TestAbuseManyGoroutines(t *testing.T) {
	if testing.Short() {
		t.Skip("slow in -short mode")
	}
	const (
		workers   = 16
		warmup    = 1000
		calls     = 10000
		maxGrowth = 32 << 20
		maxBatch  = 8
		bottle    = 4
		size      = 784
	)
	start := time.Now()
	_, dir := exportRandom(t, "classic", bottle, true)
	enc := filepath.Join(dir, onnxmeta.EncoderFile)
	dec := filepath.Join(dir, onnxmeta.DecoderFile)
	opts := inference.Options{MaxBatch: maxBatch, IntraOpThreads: 1}
	model := openRun(t, dir, opts)
	closing := openRun(t, dir, opts) // closed half-way through the calls
	closed := openRun(t, dir, opts)
	if err := closed.Close(); err != nil {
		t.Fatal(err)
	}
	encOnly, err := inference.Open(enc, "", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer encOnly.Close()
	decOnly, err := inference.Open("", dec, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer decOnly.Close()

	// Inputs, shared read-only by all goroutines.
	rng := rand.New(rand.NewPCG(7, 7))
	images := make([]float32, 128*size)
	for i := range images {
		images[i] = rng.Float32()
	}
	codes := make([]float32, 256*bottle)
	for i := range codes {
		codes[i] = float32(rng.NormFloat64())
	}
	pristineImages, pristineCodes := slices.Clone(images), slices.Clone(codes)
	img := func(n int) []float32 { return images[:n*size] }
	code := func(n int) []float32 { return codes[:n*bottle] }
	// with returns a copy of x with x[i] = v.
	with := func(x []float32, i int, v float32) []float32 {
		x = slices.Clone(x)
		x[i] = v
		return x
	}
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	wantMeta := model.Metadata()
	wantArch := wantMeta.Arch.JSON()

	var cases []abuseCall
	// valid adds a call whose result is computed now, once, and compared
	// with later. The caller owns the result: check scribbles on it, so that
	// a buffer shared between calls would show.
	valid := func(name string, call func(m *inference.Model) ([]float32, []float32, error), models ...*inference.Model) {
		wantA, wantB, err := call(model)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		check := func(m *inference.Model) error {
			a, b, err := call(m)
			if m == closing && errors.Is(err, inference.ErrClosed) {
				return nil
			}
			if err != nil {
				return err
			}
			if !slices.Equal(a, wantA) || !slices.Equal(b, wantB) {
				return fmt.Errorf("results differ from the reference by up to %g and %g", diff32(a, wantA), diff32(b, wantB))
			}
			for _, x := range [][]float32{a, b} {
				if len(x) > 0 {
					x[0], x[len(x)-1] = nan, nan
				}
			}
			return nil
		}
		for _, m := range append([]*inference.Model{model}, models...) {
			cases = append(cases, abuseCall{name, true, func() error { return check(m) }})
		}
	}
	one := func(f func(m *inference.Model) ([]float32, error)) func(m *inference.Model) ([]float32, []float32, error) {
		return func(m *inference.Model) ([]float32, []float32, error) {
			x, err := f(m)
			return x, nil, err
		}
	}
	for _, n := range []int{1, 3, maxBatch, maxBatch + 1, 37, 128} {
		valid(fmt.Sprintf("encode %d", n), one(func(m *inference.Model) ([]float32, error) { return m.Encode(img(n), n) }), closing)
		valid(fmt.Sprintf("decode %d", 2*n), one(func(m *inference.Model) ([]float32, error) { return m.Decode(code(2*n), 2*n) }), closing)
	}
	for _, n := range []int{1, 2, 17, 64} {
		valid(fmt.Sprintf("reconstruct %d", n), one(func(m *inference.Model) ([]float32, error) { return m.Reconstruct(img(n), n) }), closing)
	}
	for i, tc := range []struct {
		n    int
		from string
	}{{1, inference.FromNormal}, {5, inference.FromFitted}, {12, inference.FromNormal}, {20, inference.FromFitted}, {100, inference.FromNormal}} {
		valid(fmt.Sprintf("sample %d %s", tc.n, tc.from), func(m *inference.Model) ([]float32, []float32, error) {
			return m.Sample(tc.n, tc.from, rand.New(rand.NewPCG(uint64(i), 99)))
		}, closing)
	}
	valid("encoder half", one(func(m *inference.Model) ([]float32, error) { return encOnly.Encode(img(2), 2) }))
	valid("decoder half", one(func(m *inference.Model) ([]float32, error) { return decOnly.Decode(code(10), 10) }))
	cases = append(cases,
		abuseCall{"sample with a random seed", true, func() error {
			c, x, err := model.Sample(3, inference.FromFitted, nil)
			if err != nil {
				return err
			}
			y, err := model.Decode(c, 3)
			if err != nil {
				return err
			}
			if !slices.Equal(x, y) {
				return fmt.Errorf("Sample's images differ from its codes decoded by up to %g", diff32(x, y))
			}
			return nil
		}},
		abuseCall{"metadata", true, func() error {
			md := model.Metadata()
			if md == nil || md.Arch.JSON() != wantArch || md.Stats == nil || !slices.Equal(md.Stats.Mean, wantMeta.Stats.Mean) {
				return fmt.Errorf("Metadata() = %+v, want %+v", md, wantMeta)
			}
			// The copy is the caller's to change.
			md.Arch.Input[0] = -1
			md.Arch.Encoder[0].Out = -1
			md.Stats.Mean[0] = -1
			if s := model.ImageShape(); !slices.Equal(s, []int{1, 28, 28}) || model.Bottleneck() != bottle {
				return fmt.Errorf("ImageShape() = %v, Bottleneck() = %d", s, model.Bottleneck())
			}
			return nil
		}},
	)

	// invalid adds a call that must fail with an error that wraps target
	// (when not nil) and contains want.
	invalid := func(name string, target error, want string, call func() error) {
		cases = append(cases, abuseCall{name, false, func() error {
			err := call()
			if err == nil {
				return errors.New("no error")
			}
			if target != nil && !errors.Is(err, target) || !strings.Contains(err.Error(), want) {
				return fmt.Errorf("error %q, want one that wraps %v and contains %q", err, target, want)
			}
			return nil
		}})
	}
	encode := func(m *inference.Model, x []float32, n int) func() error {
		return func() error { _, err := m.Encode(x, n); return err }
	}
	decode := func(m *inference.Model, x []float32, n int) func() error {
		return func() error { _, err := m.Decode(x, n); return err }
	}
	reconstruct := func(m *inference.Model, x []float32, n int) func() error {
		return func() error { _, err := m.Reconstruct(x, n); return err }
	}
	sample := func(m *inference.Model, n int, from string) func() error {
		return func() error { _, _, err := m.Sample(n, from, rand.New(rand.NewPCG(1, 1))); return err }
	}
	for _, tc := range []struct {
		name   string
		target error
		want   string
		call   func() error
	}{
		{"encode short", nil, "1000 values for 2 images", encode(model, img(2)[:1000], 2)},
		{"encode long", nil, "want 1568", encode(model, img(3), 2)},
		{"encode nil", nil, "0 values for 1 images", encode(model, nil, 1)},
		{"encode empty", nil, "batch of 0", encode(model, nil, 0)},
		{"encode negative", nil, "batch of -1", encode(model, img(1), -1)},
		{"encode most negative", nil, "want at least 1", encode(model, img(1), math.MinInt)},
		{"encode NaN", nil, "image 1 holds NaN at index 116", encode(model, with(img(2), 900, nan), 2)},
		{"encode +Inf", nil, "+Inf", encode(model, with(img(9), 9*size-1, inf), 9)},
		{"encode -Inf", nil, "-Inf", encode(model, with(img(1), 3, -inf), 1)},
		{"encode 0-255 pixels", nil, "[0,1]", encode(model, with(img(3), 7, 255), 3)},
		{"encode negative pixel", nil, "[0,1]", encode(model, with(img(1), 0, -0.5), 1)},
		{"encode huge batch", nil, "too large", encode(model, img(1), math.MaxInt/100)},
		{"encode largest batch", nil, "too large", encode(model, img(1), math.MaxInt)},
		{"encode without encoder", nil, "no encoder", encode(decOnly, img(1), 1)},
		{"encode closed", inference.ErrClosed, "closed", encode(closed, img(1), 1)},
		{"encode closed, bad input", inference.ErrClosed, "closed", encode(closed, nil, -1)},
		{"decode short", nil, "7 values for 2 codes", decode(model, code(2)[:7], 2)},
		{"decode long", nil, "want 8", decode(model, code(3), 2)},
		{"decode empty", nil, "batch of 0", decode(model, []float32{}, 0)},
		{"decode negative", nil, "batch of -5", decode(model, code(1), -5)},
		{"decode NaN", nil, "code 1 holds NaN", decode(model, with(code(2), 5, nan), 2)},
		{"decode +Inf", nil, "+Inf", decode(model, with(code(1), 0, inf), 1)},
		{"decode -Inf", nil, "-Inf", decode(model, with(code(20), 79, -inf), 20)},
		{"decode huge batch", nil, "too large", decode(model, code(1), math.MaxInt/2)},
		{"decode without decoder", nil, "no decoder", decode(encOnly, code(1), 1)},
		{"decode closed", inference.ErrClosed, "closed", decode(closed, code(1), 1)},
		{"reconstruct short", nil, "values for 3 images", reconstruct(model, img(2), 3)},
		{"reconstruct NaN", nil, "NaN", reconstruct(model, with(img(1), 0, nan), 1)},
		{"reconstruct empty", nil, "batch of 0", reconstruct(model, nil, 0)},
		{"reconstruct huge batch", nil, "too large", reconstruct(model, img(1), math.MaxInt)},
		{"reconstruct without decoder", nil, "no decoder", reconstruct(encOnly, img(1), 1)},
		{"reconstruct closed", inference.ErrClosed, "closed", reconstruct(closed, img(1), 1)},
		{"sample none", nil, "want at least 1", sample(model, 0, inference.FromNormal)},
		{"sample negative", nil, "want at least 1", sample(model, -3, inference.FromFitted)},
		{"sample huge", nil, "too many", sample(model, 1<<40, inference.FromNormal)},
		{"sample largest", nil, "too many", sample(model, math.MaxInt, inference.FromFitted)},
		{"sample unknown source", nil, "unknown source", sample(model, 2, "uniform")},
		{"sample empty source", nil, "unknown source", sample(model, 2, "")},
		{"sample without decoder", nil, "no decoder", sample(encOnly, 1, inference.FromNormal)},
		{"sample closed", inference.ErrClosed, "closed", sample(closed, 1, inference.FromNormal)},
	} {
		invalid(tc.name, tc.target, tc.want, tc.call)
	}
	cases = append(cases, abuseCall{"close closed", false, func() error { return closed.Close() }})

	var nValid, nInvalid atomic.Int64
	var closeOnce sync.Once
	// round makes n calls from workers goroutines; from is the index of the
	// first call. Call i runs case (i*7)%len(cases), so that every goroutine
	// goes through all cases in turn.
	round := func(from, n int) []error {
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			errs []error
		)
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := from + w; i < from+n; i += workers {
					if i == from+n/2 && from > 0 {
						closeOnce.Do(func() {
							if err := closing.Close(); err != nil {
								t.Errorf("Close while in use: %v", err)
							}
						})
					}
					c := cases[(i*7)%len(cases)]
					if err := protect(c.run); err != nil {
						mu.Lock()
						errs = append(errs, fmt.Errorf("call %d (%s): %w", i, c.name, err))
						mu.Unlock()
					}
					if c.valid {
						nValid.Add(1)
					} else {
						nInvalid.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		return errs
	}
	report := func(errs []error) {
		for i, err := range errs {
			if i == 20 {
				t.Errorf("... and %d more", len(errs)-i)
				break
			}
			t.Error(err)
		}
		if len(errs) > 0 {
			t.FailNow()
		}
	}

	base := runtime.NumGoroutine()
	report(round(0, warmup))
	goroutinesBefore := settle(base)
	rssBefore := rss(t)
	nValid.Store(0)
	nInvalid.Store(0)
	mainStart := time.Now()
	report(round(warmup, calls))
	mainTime := time.Since(mainStart)
	if !slices.Equal(images, pristineImages) || !slices.Equal(codes, pristineCodes) {
		t.Error("the calls changed their inputs")
	}

	goroutinesAfter := settle(goroutinesBefore)
	rssAfter := rss(t)
	t.Logf("%d cases; %d calls (%d valid, %d invalid) from %d goroutines in %v after %d warm-up calls; %v in all (race detector: %v)",
		len(cases), calls, nValid.Load(), nInvalid.Load(), workers, mainTime.Round(time.Millisecond), warmup,
		time.Since(start).Round(time.Millisecond), raceEnabled)
	t.Logf("RSS %.1f MiB after the warm-up, %.1f MiB at the end (%+.1f MiB; bound %d MiB)",
		float64(rssBefore)/(1<<20), float64(rssAfter)/(1<<20), float64(rssAfter-rssBefore)/(1<<20), maxGrowth>>20)
	t.Logf("goroutines: %d after the warm-up, %d at the end", goroutinesBefore, goroutinesAfter)
	if got := nValid.Load() + nInvalid.Load(); got != calls {
		t.Errorf("%d calls made, want %d", got, calls)
	}
	if rssAfter-rssBefore > maxGrowth {
		t.Errorf("RSS grew by %.1f MiB over %d calls, more than %d MiB", float64(rssAfter-rssBefore)/(1<<20), calls, maxGrowth>>20)
	}
	if goroutinesAfter > goroutinesBefore {
		t.Errorf("%d goroutines at the end, %d after the warm-up\n%s", goroutinesAfter, goroutinesBefore, allStacks())
	}
}

// protect runs f and turns a panic into an error with the stack.
func protect(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v\n%s", r, debug.Stack())
		}
	}()
	return f()
}

// settle waits up to 5s for the number of goroutines to come down to want,
// so that goroutines on their way out can finish, and returns the number.
func settle(want int) int {
	n := runtime.NumGoroutine()
	for deadline := time.Now().Add(5 * time.Second); n > want && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		runtime.GC()
		n = runtime.NumGoroutine()
	}
	return n
}

func allStacks() string {
	buf := make([]byte, 1<<20)
	return string(buf[:runtime.Stack(buf, true)])
}
