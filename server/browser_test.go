package server

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/png"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/latent-ai/latent/checkpoint"
	"github.com/latent-ai/latent/dataset"
	"github.com/latent-ai/latent/exporter"
	"github.com/latent-ai/latent/inference"
	"github.com/latent-ai/latent/internal/mnisttest"
	"github.com/latent-ai/latent/models"
	"github.com/latent-ai/latent/pca"
)

// The browser tests drive the explorer in a headless Chromium (Debian's
// package chromium: apt-get install -y chromium). Without one they are
// skipped, except under CI (CI set in the environment), where they fail.
//
// LATENT_CHROMIUM names another browser binary. LATENT_EXPLORER_RUN serves
// that exported run folder instead of a random model, and
// LATENT_EXPLORER_SCREENSHOT saves a PNG of the page at the end of
// TestExplorer, for example:
//
//	LATENT_EXPLORER_RUN=/tmp/qc LATENT_EXPLORER_SCREENSHOT=/tmp/explorer.png go test ./server -run TestExplorer

// chromium returns the path of the browser, or skips the test.
func chromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("LATENT_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p == "" {
			continue
		}
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	msg := "no Chromium for the browser tests: install it (apt-get install -y chromium) or set LATENT_CHROMIUM"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// browser starts a headless Chromium with a fresh profile and returns a
// tab's context, which ends with the test or after a minute. It fails the
// test at its end if the page threw an uncaught exception, logged an error
// or a warning on the console, or the browser reported one (a 404, a
// canvas read back often without willReadFrequently), unless the problem
// contains one of the allowed strings.
func browser(t *testing.T, allowed ...string) context.Context {
	t.Helper()
	path := chromium(t)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("mute-audio", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.WindowSize(1100, 1400),
	)
	ctx, cancelTab := chromedp.NewContext(actx)
	ctx, cancelTime := context.WithTimeout(ctx, time.Minute)
	var (
		mu       sync.Mutex
		problems []string
	)
	if err := chromedp.Listen(ctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			text := d.Text
			if d.Exception != nil && d.Exception.Description != "" {
				text += " " + d.Exception.Description
			}
			problems = append(problems, "uncaught exception: "+text)
		case *log.EventEntryAdded:
			// The browser's own warnings and errors: a 404 (a missing
			// favicon), a canvas read back without willReadFrequently.
			if e := ev.Entry; e.Level == log.EntryLevelWarning || e.Level == log.EntryLevelError {
				problems = append(problems, fmt.Sprintf("browser %s: %s %s", e.Level, e.Text, e.URL))
			}
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeWarning {
				var args []string
				for _, a := range ev.Args {
					args = append(args, string(a.Value))
				}
				problems = append(problems, "console error: "+strings.Join(args, " "))
			}
		}
	}); err != nil {
		cancelTime()
		cancelTab()
		cancelAlloc()
		t.Fatalf("start Chromium: %v", err)
	}
	t.Cleanup(func() {
		cancelTime()
		cancelTab()
		cancelAlloc()
		mu.Lock()
		defer mu.Unlock()
	next:
		for _, p := range problems {
			for _, a := range allowed {
				if strings.Contains(p, a) {
					continue next
				}
			}
			t.Errorf("page: %s", p)
		}
	})
	return ctx
}

// explorerServer serves the explorer of LATENT_EXPLORER_RUN or of the random
// test model, with the MNIST test set as examples when there is one.
func explorerServer(t *testing.T) (*httptest.Server, Model) {
	t.Helper()
	var m Model = testModel(t, true)
	if dir := os.Getenv("LATENT_EXPLORER_RUN"); dir != "" {
		rm, err := inference.OpenRun(dir, inference.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rm.Close() })
		m = rm
	}
	var examples *dataset.Set
	if dir := mnisttest.Find(); dir != "" {
		set, err := dataset.Load(dataset.MNIST, dir, dataset.Test)
		if err != nil {
			t.Fatal(err)
		}
		examples = set
	}
	s := newServer(t, m, Config{Examples: examples})
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return ts, m
}

// rect is an element's box in CSS pixels of the viewport, after it was
// scrolled into view.
type rect struct {
	X, Y, W, H float64
}

func elementRect(ctx context.Context, id string) (rect, error) {
	return chromedp.Run(ctx, chromedp.Evaluate[rect](fmt.Sprintf(
		`(() => { const e = document.getElementById(%q); e.scrollIntoView({block: "center"}); const r = e.getBoundingClientRect(); return {X: r.left, Y: r.top, W: r.width, H: r.height}; })()`, id)))
}

// renders returns the expression of the number of renders of a canvas.
func renders(id string) string {
	return fmt.Sprintf(`Number(document.getElementById(%q).dataset.renders || 0)`, id)
}

// run runs the JavaScript expression and ignores its value.
func run(ctx context.Context, expr string) error {
	_, err := chromedp.Run(ctx, chromedp.Evaluate[any](expr))
	return err
}

// poll waits until the JavaScript expression is true, for up to 20 seconds.
func poll(ctx context.Context, what, expr string) error {
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		return fmt.Errorf("waiting for %s (%s): %w", what, expr, err)
	}
	return nil
}

func TestExplorer(t *testing.T) {
	ts, m := explorerServer(t)
	ctx := browser(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(ts.URL+"/")); err != nil {
		t.Fatal(err)
	}
	// The page loads the model and decodes the mean code.
	if err := poll(ctx, "the first decoded digit", renders("pc-out")+" >= 1"); err != nil {
		t.Fatal(err)
	}
	n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('#sliders input[type=range]').length`))
	if err != nil {
		t.Fatal(err)
	}
	if want := min(10, m.Bottleneck()); n != want {
		t.Errorf("%d sliders, want %d", n, want)
	}

	t.Run("slider", func(t *testing.T) {
		if err := run(ctx, `(window.before = document.getElementById('pc-out').toDataURL(), true)`); err != nil {
			t.Fatal(err)
		}
		// Click near the right end of the first slider's track: s_1 ≈ +2.7.
		r, err := elementRect(ctx, "pc-0")
		if err != nil {
			t.Fatal(err)
		}
		if err := chromedp.Do(ctx, chromedp.MouseClickXY(r.X+0.95*r.W, r.Y+r.H/2)); err != nil {
			t.Fatal(err)
		}
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById('pc-0').value`))
		if err != nil {
			t.Fatal(err)
		}
		if f, _ := strconv.ParseFloat(v, 64); f < 1.5 {
			t.Fatalf("slider at %s after the click, want near 3", v)
		}
		if err := poll(ctx, "the decoded digit to change", `document.getElementById('pc-out').toDataURL() !== window.before`); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("draw", func(t *testing.T) {
		r, err := elementRect(ctx, "pad")
		if err != nil {
			t.Fatal(err)
		}
		// A stroke like a 7: across the top, then down to the left.
		pts := [][2]float64{{0.3, 0.25}, {0.5, 0.25}, {0.7, 0.25}, {0.62, 0.45}, {0.55, 0.6}, {0.48, 0.78}}
		at := func(p [2]float64) (float64, float64) { return r.X + p[0]*r.W, r.Y + p[1]*r.H }
		x, y := at(pts[0])
		steps := []chromedp.Action[chromedp.Void]{
			chromedp.MouseEvent(input.DispatchMouseEventTypeMouseMoved, x, y),
			chromedp.MouseEvent(input.DispatchMouseEventTypeMousePressed, x, y, chromedp.ButtonLeft, chromedp.ClickCount(1)),
		}
		for _, p := range pts[1:] {
			x, y = at(p)
			steps = append(steps, chromedp.MouseEvent(input.DispatchMouseEventTypeMouseMoved, x, y, chromedp.ButtonLeft,
				func(p *input.DispatchMouseEventParams) { p.Buttons = 1 }))
		}
		steps = append(steps, chromedp.MouseEvent(input.DispatchMouseEventTypeMouseReleased, x, y, chromedp.ButtonLeft, chromedp.ClickCount(1)))
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatal(err)
		}
		if err := poll(ctx, "the code and reconstruction of the drawing", renders("pad-out")+" >= 1 && "+renders("code-strip")+" >= 1"); err != nil {
			t.Fatal(err)
		}
		text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById('code-numbers').textContent`))
		if err != nil {
			t.Fatal(err)
		}
		fields := strings.Fields(text)
		if len(fields) != m.Bottleneck() {
			t.Fatalf("code %q has %d numbers, want %d", text, len(fields), m.Bottleneck())
		}
		for _, f := range fields {
			if _, err := strconv.ParseFloat(f, 64); err != nil {
				t.Errorf("code value %q: %v", f, err)
			}
		}
		// The 28×28 input holds ink.
		ink, err := chromedp.Run(ctx, chromedp.Evaluate[int](`(() => {
			const c = document.getElementById('pad-input'), d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
			let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] > 128) n++; return n; })()`))
		if err != nil {
			t.Fatal(err)
		}
		if ink == 0 {
			t.Errorf("the 28×28 input shows no ink")
		}
	})

	t.Run("interpolate", func(t *testing.T) {
		if mnisttest.Find() == "" {
			if err := poll(ctx, "the note on missing examples", `document.getElementById('examples').textContent.includes('No test digits')`); err != nil {
				t.Fatal(err)
			}
			t.Skip("no MNIST test set: the explorer says so")
		}
		if err := poll(ctx, "the interpolated digit", renders("interp-out")+" >= 1"); err != nil {
			t.Fatal(err)
		}
		if err := run(ctx, `(window.mid = document.getElementById('interp-out').toDataURL(), true)`); err != nil {
			t.Fatal(err)
		}
		r, err := elementRect(ctx, "interp-t")
		if err != nil {
			t.Fatal(err)
		}
		if err := chromedp.Do(ctx, chromedp.MouseClickXY(r.X+r.W-3, r.Y+r.H/2)); err != nil {
			t.Fatal(err)
		}
		if err := poll(ctx, "the interpolated digit to change", `document.getElementById('interp-out').toDataURL() !== window.mid`); err != nil {
			t.Fatal(err)
		}
		// Picking another digit re-encodes the pair.
		before, err := chromedp.Run(ctx, chromedp.Evaluate[int](renders("interp-a")))
		if err != nil {
			t.Fatal(err)
		}
		if err := run(ctx, `(document.querySelectorAll('#examples canvas')[5].click(), true)`); err != nil {
			t.Fatal(err)
		}
		if err := poll(ctx, "the new digit A", renders("interp-a")+fmt.Sprintf(" > %d", before)); err != nil {
			t.Fatal(err)
		}
	})

	if path := os.Getenv("LATENT_EXPLORER_SCREENSHOT"); path != "" {
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot in %s", path)
	}
}

// TestExplorerShowsErrors checks that the page reports the API's errors
// instead of failing silently: a server that is always busy.
func TestExplorerShowsErrors(t *testing.T) {
	f := &fakeModel{b: 4, release: make(chan struct{})}
	defer close(f.release)
	s := newServer(t, f, Config{MaxInFlight: 1, MaxQueue: 1, MaxWait: 10 * time.Millisecond, RequestTimeout: 200 * time.Millisecond})
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	ctx := browser(t, "Failed to load resource: the server responded with a status of 404", "Failed to load resource: the server responded with a status of 503")
	if err := chromedp.Do(ctx, chromedp.Navigate(ts.URL+"/")); err != nil {
		t.Fatal(err)
	}
	// The first decode blocks in the model; the slider's next one finds
	// the server busy.
	if err := poll(ctx, "the sliders", `document.querySelectorAll('#sliders input').length === 4`); err != nil {
		t.Fatal(err)
	}
	if err := poll(ctx, "a busy note", `document.getElementById('status').textContent.includes('busy') || (document.getElementById('pc-random').click(), false)`); err != nil {
		t.Fatal(err)
	}
}

// TestExplorerLayoutAndKeys loads the explorer at 1280 and at 400 CSS
// pixels wide. At each width a screenshot taken as soon as the page says
// it is ready shows drawn canvases, not black ones; at 400 nothing sticks
// out sideways and every slider's value is on screen. The test thumbnails
// can be picked with the keyboard, and the favicon is served.
// LATENT_EXPLORER_SCREENSHOTS names a folder to save the two screenshots
// in (explorer-1280.png, explorer-400.png).
func TestExplorerLayoutAndKeys(t *testing.T) {
	ts, _ := explorerServer(t)
	ctx := browser(t)
	for _, width := range []int64{1280, 400} {
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(width, 1000), chromedp.Navigate(ts.URL+"/")); err != nil {
			t.Fatal(err)
		}
		if err := poll(ctx, "the page to be ready", `document.body.dataset.ready === "true"`); err != nil {
			t.Fatal(err)
		}
		shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if dir := os.Getenv("LATENT_EXPLORER_SCREENSHOTS"); dir != "" {
			os.WriteFile(filepath.Join(dir, fmt.Sprintf("explorer-%d.png", width)), shot, 0o644)
		}
		img, err := png.Decode(bytes.NewReader(shot))
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{"pc-out", "interp-out", "interp-a"} {
			r, err := chromedp.Run(ctx, chromedp.Evaluate[rect](fmt.Sprintf(
				`(() => { const e = document.getElementById(%q); const r = e.getBoundingClientRect(); return {X: r.left + scrollX, Y: r.top + scrollY, W: r.width, H: r.height}; })()`, id)))
			if err != nil {
				t.Fatal(err)
			}
			if lit := litShare(img, r); lit < 0.02 {
				t.Errorf("%d px: the screenshot shows %s black (%.1f%% of it lit)", width, id, 100*lit)
			}
		}
		over, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`(() => {
			const w = document.documentElement.clientWidth, out = [];
			if (document.documentElement.scrollWidth > w) out.push("the page is " + document.documentElement.scrollWidth + " px wide");
			for (const e of document.querySelectorAll("#sliders output, #sliders input, button, canvas")) {
				const r = e.getBoundingClientRect();
				if (r.right > w + 0.5 || r.left < -0.5) out.push((e.id || e.tagName) + " ends at " + Math.round(r.right));
			}
			return out; })()`))
		if err != nil {
			t.Fatal(err)
		}
		if len(over) > 0 {
			t.Errorf("%d px: off screen: %v", width, over)
		}
	}

	// The keyboard: Tab reaches a thumbnail, Enter picks it as the next of A and B.
	before, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("interp-a-label").textContent + "|" + document.getElementById("interp-b-label").textContent`))
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Focus(`#examples canvas:nth-child(5)`), chromedp.KeyEvent("\r")); err != nil {
		t.Fatal(err)
	}
	if err := poll(ctx, "the thumbnail picked with Enter", fmt.Sprintf(
		`document.getElementById("interp-a-label").textContent + "|" + document.getElementById("interp-b-label").textContent !== %q`, before)); err != nil {
		t.Error(err)
	}
	tab, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('#examples canvas[tabindex="0"][role="button"]').length`))
	if err != nil || tab == 0 {
		t.Errorf("%d thumbnails reachable with Tab (%v)", tab, err)
	}
	resp, err := http.Get(ts.URL + "/favicon.svg")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/svg+xml" {
		t.Errorf("favicon: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}

// litShare returns the share of the pixels of img inside r (CSS pixels of
// the page, at the screenshot's scale of 1) that are not black.
func litShare(img image.Image, r rect) float64 {
	lit, all := 0, 0
	for y := int(r.Y) + 2; y < int(r.Y+r.H)-2; y++ {
		for x := int(r.X) + 2; x < int(r.X+r.W)-2; x++ {
			cr, cg, cb, _ := img.At(x, y).RGBA()
			all++
			if cr+cg+cb > 3*0x1000 {
				lit++
			}
		}
	}
	if all == 0 {
		return 0
	}
	return float64(lit) / float64(all)
}

// TestExplorerColour serves a random 3×32×32 colour model with colour test
// images: the explorer shows the thumbnails and A in colour, and encodes
// and decodes the picked pair.
func TestExplorerColour(t *testing.T) {
	shape := []int{3, 32, 32}
	a, err := models.NewFor("conv", 4, shape)
	if err != nil {
		t.Fatal(err)
	}
	m := checkpoint.NewModel(a)
	rng := rand.New(rand.NewPCG(5, 6))
	for _, p := range a.Params() {
		for i := range m.Params[p.Name] {
			m.Params[p.Name][i] = float32((2*rng.Float64() - 1) * p.Layer.InitBound())
		}
	}
	codes := make([]float32, 200*4)
	for i := range codes {
		codes[i] = float32(rng.NormFloat64())
	}
	stats, err := pca.Fit(codes, 200, 4)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if _, _, err := exporter.Export(m, stats, dir); err != nil {
		t.Fatal(err)
	}
	model, err := inference.OpenRun(dir, inference.Options{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer model.Close()
	// 24 images: a red square on a green ground.
	set := &dataset.Set{Name: "colour", Split: dataset.Test, N: 24, Rows: 32, Cols: 32, Channels: 3, Labels: make([]uint8, 24)}
	for i := range 24 {
		set.Labels[i] = uint8(i % 3)
		for c := range 3 {
			for y := range 32 {
				for x := range 32 {
					v := uint8(0)
					inside := x >= 8 && x < 24 && y >= 8 && y < 24
					if (c == 0 && inside) || (c == 1 && !inside) {
						v = 230
					}
					set.Pixels = append(set.Pixels, v)
				}
			}
		}
	}
	ts := httptest.NewServer(newServer(t, model, Config{Examples: set}).Handler())
	defer ts.Close()
	ctx := browser(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(ts.URL+"/")); err != nil {
		t.Fatal(err)
	}
	if err := poll(ctx, "the page to be ready", `document.body.dataset.ready === "true"`); err != nil {
		t.Fatal(err)
	}
	if err := poll(ctx, "the decoded mix of A and B", renders("interp-out")+" >= 1"); err != nil {
		t.Fatal(err)
	}
	for _, sel := range []string{"#examples canvas", "#interp-a"} {
		rgb, err := chromedp.Run(ctx, chromedp.Evaluate[[]int](fmt.Sprintf(`(() => {
			const c = document.querySelector(%q), d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
			const mid = 4 * ((c.height >> 1) * c.width + (c.width >> 1)), edge = 4 * 2 * c.width + 8;
			return [d[mid], d[mid + 1], d[mid + 2], d[edge], d[edge + 1], d[edge + 2]]; })()`, sel)))
		if err != nil {
			t.Fatal(err)
		}
		if len(rgb) != 6 || rgb[0] < 200 || rgb[1] > 20 || rgb[3] > 20 || rgb[4] < 200 {
			t.Errorf("%s: centre rgb %v and edge rgb %v, want a red square on green", sel, rgb[:3], rgb[3:])
		}
	}
}
