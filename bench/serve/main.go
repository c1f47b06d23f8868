// Command serve is a load generator for latent's HTTP server (package
// server, "latent serve"). It only talks to the loopback interface, and
// every phase is bounded in time and in requests, so it stops by itself.
//
//	go run ./bench/serve [--run DIR | --url http://127.0.0.1:8080] [flags]
//
// Without --url it starts a server in-process on 127.0.0.1 (the model of
// --run, or a random classic model when --run is empty: speed does not
// depend on training) with the limits of the flags. It then measures
// POST /v1/encode:
//
//  1. closed loop at batch 1: --concurrency clients send requests back to
//     back for --duration (at most --max-requests): requests/s and the
//     p50/p99 latency of the answers;
//  2. the same at batch 64;
//  3. overload: an open loop at --overload times the rate phase 2 sustained
//     (batch 64). Requests start on a fixed schedule whatever the answers,
//     as independent users would send them, with at most --max-outstanding
//     in flight in the client (a start beyond that is counted as not
//     sent). It reports the status counts (a server with backpressure
//     answers 503 instead of letting a queue grow), the latencies of the
//     200s and of the 503s, the largest load /healthz reported, and the
//     resident memory (RSS) of the server before and after: of this
//     process when the server is in-process (the client included), of
//     --pid with --url.
//
// Images are the MNIST test set's when it is found ($LATENT_DATA or
// shared/datasets/mnist), else random pixels.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/latent-ai/latent/checkpoint"
	"github.com/latent-ai/latent/dataset"
	"github.com/latent-ai/latent/exporter"
	"github.com/latent-ai/latent/inference"
	"github.com/latent-ai/latent/internal/mnisttest"
	"github.com/latent-ai/latent/models"
	"github.com/latent-ai/latent/pca"
	"github.com/latent-ai/latent/server"
)

type config struct {
	run, url       string
	pid            int
	duration       time.Duration
	concurrency    int
	maxRequests    int
	overload       float64
	maxOutstanding int
	threads        int
	inFlight       int
	queue          int
	maxWait        time.Duration
}

func main() {
	var c config
	flag.StringVar(&c.run, "run", "", "exported run folder to serve in-process (default: a random classic model)")
	flag.StringVar(&c.url, "url", "", "base URL of a running server instead, on the loopback interface (http://127.0.0.1:8080)")
	flag.IntVar(&c.pid, "pid", 0, "with --url: process id of the server, to read its RSS")
	flag.DurationVar(&c.duration, "duration", 5*time.Second, "length of each phase")
	flag.IntVar(&c.concurrency, "concurrency", 8, "clients of the closed-loop phases")
	flag.IntVar(&c.maxRequests, "max-requests", 50000, "most requests of a phase")
	flag.Float64Var(&c.overload, "overload", 2, "rate of the overload phase, in multiples of the batch-64 rate")
	flag.IntVar(&c.maxOutstanding, "max-outstanding", 512, "most requests in flight in the client during the overload phase")
	flag.IntVar(&c.threads, "threads", 0, "in-process server: ONNX Runtime threads per operator (0: one per core, as latent serve)")
	flag.IntVar(&c.inFlight, "max-inflight", 0, "in-process server: inference slots (0: the server's default, 2 per CPU)")
	flag.IntVar(&c.queue, "max-queue", 0, "in-process server: waiting requests (0: the server's default)")
	flag.DurationVar(&c.maxWait, "max-wait", 0, "in-process server: longest wait for a slot (0: the server's default)")
	flag.Parse()
	if err := run(c); err != nil {
		fmt.Fprintf(os.Stderr, "bench/serve: %v\n", err)
		os.Exit(1)
	}
}

func run(c config) error {
	if c.duration <= 0 || c.duration > 5*time.Minute || c.concurrency < 1 || c.maxRequests < 1 || c.overload <= 0 || c.maxOutstanding < 1 {
		return errors.New("want 0 < --duration <= 5m, and positive --concurrency, --max-requests, --overload and --max-outstanding")
	}
	// Everything ends by this deadline, whatever happens.
	ctx, cancel := context.WithTimeout(context.Background(), 4*c.duration+time.Minute)
	defer cancel()

	base, rss, stop, err := target(ctx, c)
	if err != nil {
		return err
	}
	defer stop()
	client := &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			MaxIdleConns:        c.maxOutstanding + c.concurrency,
			MaxIdleConnsPerHost: c.maxOutstanding + c.concurrency,
			IdleConnTimeout:     30 * time.Second,
		},
	}
	var info struct {
		Kind       string `json:"kind"`
		Bottleneck int    `json:"bottleneck"`
		Device     string `json:"device"`
	}
	if err := getJSON(ctx, client, base+"/v1/model", &info); err != nil {
		return err
	}
	var health health
	if err := getJSON(ctx, client, base+"/healthz", &health); err != nil {
		return err
	}
	images, source := loadImages(64)
	fmt.Printf("server %s: %s model, code of %d, on %s; %d inference slots, queue %d; %d CPUs, GOMAXPROCS %d\n",
		base, info.Kind, info.Bottleneck, info.Device, health.MaxInFlight, health.MaxQueue, runtime.NumCPU(), runtime.GOMAXPROCS(0))
	fmt.Printf("images: %s; each phase %v, at most %d requests\n\n", source, c.duration, c.maxRequests)

	var rate64 float64
	for _, batch := range []int{1, 64} {
		body := encodeBody(images[:batch])
		// Warm up the connections and the model.
		closedLoop(ctx, client, base, body, c.concurrency, 4*c.concurrency, c.duration)
		r := closedLoop(ctx, client, base, body, c.concurrency, c.maxRequests, c.duration)
		fmt.Printf("batch %2d, %d clients, closed loop: %s\n", batch, c.concurrency, r)
		fmt.Printf("          body %d bytes; %.0f images/s\n", len(body), r.okRate()*float64(batch))
		if batch == 64 {
			rate64 = r.okRate()
		}
	}
	if rate64 <= 0 {
		return errors.New("no request of batch 64 succeeded: no overload phase")
	}

	body := encodeBody(images)
	rate := c.overload * rate64
	before := rss()
	peak := &health
	*peak = health
	sampler := sampleHealth(ctx, client, base, peak)
	r := openLoop(ctx, client, base, body, rate, c.maxOutstanding, c.maxRequests, c.duration)
	sampler()
	after := rss()
	fmt.Printf("\nbatch 64, open loop at %.0f requests/s (%.1f × %.0f): %s\n", rate, c.overload, rate64, r)
	fmt.Printf("          largest load seen on /healthz: %d running, %d admitted (limits %d and %d+%d)\n",
		peak.Running, peak.Admitted, peak.MaxInFlight, peak.MaxInFlight, peak.MaxQueue)
	fmt.Printf("          RSS before %s, after %s\n", before, after)
	return nil
}

// target starts the in-process server, or checks --url. It returns the
// base URL, a function that reads the server's RSS, and a function that
// stops the server.
func target(ctx context.Context, c config) (base string, rss func() string, stop func(), err error) {
	if c.url != "" {
		u, err := url.Parse(c.url)
		if err != nil || u.Scheme != "http" || u.Host == "" {
			return "", nil, nil, fmt.Errorf("--url %q: want http://HOST:PORT", c.url)
		}
		if !loopback(u.Hostname()) {
			return "", nil, nil, fmt.Errorf("--url %q: the load generator only talks to the loopback interface (localhost, 127.0.0.0/8, ::1)", c.url)
		}
		if c.run != "" {
			return "", nil, nil, errors.New("give --run or --url, not both")
		}
		return strings.TrimSuffix(c.url, "/"), func() string { return readRSS(c.pid) }, func() {}, nil
	}
	dir := c.run
	cleanup := func() {}
	if dir == "" {
		if dir, err = randomRun(); err != nil {
			return "", nil, nil, err
		}
		cleanup = func() { os.RemoveAll(dir) }
	}
	model, err := inference.OpenRun(dir, inference.Options{IntraOpThreads: c.threads})
	if err != nil {
		cleanup()
		return "", nil, nil, err
	}
	srv, err := server.New(model, server.Config{
		MaxInFlight: c.inFlight,
		MaxQueue:    c.queue,
		MaxWait:     c.maxWait,
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		model.Close()
		cleanup()
		return "", nil, nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		model.Close()
		cleanup()
		return "", nil, nil, err
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(sctx, ln) }()
	stop = func() {
		cancel()
		if err := <-done; err != nil {
			fmt.Fprintf(os.Stderr, "bench/serve: %v\n", err)
		}
		model.Close()
		cleanup()
	}
	return "http://" + ln.Addr().String(), func() string { return readRSS(os.Getpid()) }, stop, nil
}

// loopback reports whether host names the loopback interface.
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// randomRun exports a classic model of bottleneck 10 with PyTorch's default
// initialisation, and latent stats of random codes, into a new folder.
func randomRun() (string, error) {
	a, err := models.New("classic", 10)
	if err != nil {
		return "", err
	}
	m := checkpoint.NewModel(a)
	m.Meta.Dataset = dataset.MNIST
	rng := rand.New(rand.NewPCG(1, 2))
	for _, p := range a.Params() {
		bound := p.Layer.InitBound()
		for i := range m.Params[p.Name] {
			m.Params[p.Name][i] = float32((2*rng.Float64() - 1) * bound)
		}
	}
	codes := make([]float32, 200*10)
	for i := range codes {
		codes[i] = float32(rng.NormFloat64())
	}
	stats, err := pca.Fit(codes, 200, 10)
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "latent-bench-serve-")
	if err != nil {
		return "", err
	}
	if _, _, err := exporter.Export(m, stats, dir); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

// loadImages returns n images of 784 pixels: the first of the MNIST test
// set when found, else random ones, and says which.
func loadImages(n int) ([][]float32, string) {
	out := make([][]float32, n)
	if dir := mnisttest.Find(); dir != "" {
		if set, err := dataset.Load(dataset.MNIST, dir, dataset.Test); err == nil {
			for i := range out {
				out[i] = set.Image(i)
			}
			return out, "MNIST test set (" + dir + ")"
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range out {
		out[i] = make([]float32, 784)
		for j := range out[i] {
			out[i][j] = rng.Float32()
		}
	}
	return out, "random pixels"
}

// encodeBody returns the JSON body of /v1/encode for images, with pixels
// written to 4 significant digits as a client would.
func encodeBody(images [][]float32) []byte {
	var b bytes.Buffer
	b.WriteString(`{"images":[`)
	for i, img := range images {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('[')
		for j, v := range img {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.FormatFloat(float64(v), 'g', 4, 32))
		}
		b.WriteByte(']')
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

// result is the outcome of one phase.
type result struct {
	elapsed  time.Duration
	statuses map[int]int // by HTTP status; 0 for transport errors
	notSent  int         // open loop: starts skipped at --max-outstanding
	ok, shed []time.Duration
	firstErr error
}

func (r *result) add(status int, d time.Duration, err error) {
	r.statuses[status]++
	switch {
	case status == http.StatusOK:
		r.ok = append(r.ok, d)
	case status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests:
		r.shed = append(r.shed, d)
	}
	if err != nil && r.firstErr == nil {
		r.firstErr = err
	}
}

func (r *result) merge(o *result) {
	for k, v := range o.statuses {
		r.statuses[k] += v
	}
	r.ok = append(r.ok, o.ok...)
	r.shed = append(r.shed, o.shed...)
	if r.firstErr == nil {
		r.firstErr = o.firstErr
	}
}

func (r *result) okRate() float64 { return float64(len(r.ok)) / r.elapsed.Seconds() }

func (r *result) String() string {
	var codes []int
	total := 0
	for k, v := range r.statuses {
		codes = append(codes, k)
		total += v
	}
	sort.Ints(codes)
	var parts []string
	for _, k := range codes {
		name := strconv.Itoa(k)
		if k == 0 {
			name = "error"
		}
		parts = append(parts, fmt.Sprintf("%s×%d", name, r.statuses[k]))
	}
	s := fmt.Sprintf("%d requests in %.1fs, %.1f ok/s; p50 %s, p99 %s; statuses %s",
		total, r.elapsed.Seconds(), r.okRate(), pct(r.ok, 50), pct(r.ok, 99), strings.Join(parts, " "))
	if len(r.shed) > 0 {
		s += fmt.Sprintf("; 503 p50 %s, p99 %s", pct(r.shed, 50), pct(r.shed, 99))
	}
	if r.notSent > 0 {
		s += fmt.Sprintf("; %d not sent (client at --max-outstanding)", r.notSent)
	}
	if r.firstErr != nil {
		s += fmt.Sprintf("; first error: %v", r.firstErr)
	}
	return s
}

// pct returns the p-th percentile of ds, or "-".
func pct(ds []time.Duration, p float64) string {
	if len(ds) == 0 {
		return "-"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p / 100)
	return s[i].Round(10 * time.Microsecond).String()
}

// post sends one /v1/encode request and returns its status and latency.
func post(ctx context.Context, client *http.Client, base string, body []byte) (int, time.Duration, error) {
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/encode", bytes.NewReader(body))
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := client.Do(req)
	if err != nil {
		return 0, time.Since(start), err
	}
	_, err = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode, time.Since(start), err
}

// closedLoop runs workers clients that each send the next request when the
// last one is answered, until d has passed or max requests were sent.
func closedLoop(ctx context.Context, client *http.Client, base string, body []byte, workers, max int, d time.Duration) *result {
	total := &result{statuses: map[int]int{}}
	var (
		sent atomic.Int64
		mu   sync.Mutex
		wg   sync.WaitGroup
	)
	start := time.Now()
	deadline := start.Add(d)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &result{statuses: map[int]int{}}
			for time.Now().Before(deadline) && ctx.Err() == nil && sent.Add(1) <= int64(max) {
				r.add(post(ctx, client, base, body))
			}
			mu.Lock()
			total.merge(r)
			mu.Unlock()
		}()
	}
	wg.Wait()
	total.elapsed = time.Since(start)
	return total
}

// openLoop starts requests at rate per second for d (at most max), each in
// its own goroutine, with at most outstanding in flight, and waits for the
// answers.
func openLoop(ctx context.Context, client *http.Client, base string, body []byte, rate float64, outstanding, max int, d time.Duration) *result {
	total := &result{statuses: map[int]int{}}
	var (
		mu      sync.Mutex
		wg      sync.WaitGroup
		started int
	)
	slots := make(chan struct{}, outstanding)
	start := time.Now()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for now := range tick.C {
		elapsed := now.Sub(start)
		if elapsed >= d || started >= max || ctx.Err() != nil {
			break
		}
		for due := min(int(elapsed.Seconds()*rate), max); started < due; started++ {
			select {
			case slots <- struct{}{}:
			default:
				mu.Lock()
				total.notSent++
				mu.Unlock()
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				status, lat, err := post(ctx, client, base, body)
				<-slots
				mu.Lock()
				total.add(status, lat, err)
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	total.elapsed = time.Since(start)
	return total
}

type health struct {
	Running     int   `json:"running"`
	Admitted    int64 `json:"admitted"`
	MaxInFlight int   `json:"max_in_flight"`
	MaxQueue    int   `json:"max_queue"`
}

// sampleHealth polls /healthz every 50ms and keeps the largest load in
// peak until the returned function is called.
func sampleHealth(ctx context.Context, client *http.Client, base string, peak *health) func() {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	peak.Running, peak.Admitted = 0, 0
	go func() {
		defer close(done)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			var h health
			if getJSON(ctx, client, base+"/healthz", &h) == nil {
				peak.Running = max(peak.Running, h.Running)
				peak.Admitted = max(peak.Admitted, h.Admitted)
			}
		}
	}()
	return func() { cancel(); <-done }
}

func getJSON(ctx context.Context, client *http.Client, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	res, err := client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, res.Status)
	}
	return json.NewDecoder(res.Body).Decode(v)
}

// readRSS returns the resident and peak resident memory of process pid
// from /proc, or "unknown".
func readRSS(pid int) string {
	if pid <= 0 {
		return "unknown (give --pid)"
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	var rss, hwm string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		switch k {
		case "VmRSS":
			rss = strings.TrimSpace(v)
		case "VmHWM":
			hwm = strings.TrimSpace(v)
		}
	}
	return fmt.Sprintf("%s (peak %s)", rss, hwm)
}
