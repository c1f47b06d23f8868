// Command inference benchmarks latent's ONNX Runtime inference (package
// inference) against PyTorch eval (bench/torch_infer.py) on the CPU.
//
//	go run ./bench/inference [--data DIR] [--threads N] [--out DIR]
//	bench/inference.sh [flags]    (the same, from any folder)
//
// For each model kind (classic, conv) it builds a model with PyTorch's
// default initialisation from a fixed seed (speed does not depend on
// training), saves model.safetensors, exports encoder.onnx/decoder.onnx,
// then measures:
//
//   - batch encoding of the whole MNIST training set (60k images) through
//     inference.Model.Encode, for each batch size in --batches
//     (Options.MaxBatch), as images/s: the best of --passes timed passes
//     after one warm-up pass;
//   - single-image encode latency: --single calls of Encode(image, 1) after
//     warm-up, p50 and p99 in microseconds;
//   - latent encode --split all end to end (this checkout's cmd/latent:
//     reading and inflating the 70k IDX images, the model, writing the
//     .npy), as it runs by default and with --calls 1 (one call at a time
//     on every thread), the passes alternating, as images/s and as a share
//     of the package's rate above (--encode=false skips it);
//   - the same through /usr/bin/python3 bench/torch_infer.py --model
//     model.safetensors --split train, with the same threads (the best of
//     --torch-runs runs of it).
//
// It prints a table (ORT / PyTorch images/s, ratio, latencies) and, last,
// one JSON line with every number. With --explore (default "auto": when a
// ratio is under --target) it also times ONNX Runtime sessions made with
// other session options than package inference uses, to see what helps.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/latent-ai/latent/dataset"
	"github.com/latent-ai/latent/exporter"
	"github.com/latent-ai/latent/inference"
	"github.com/latent-ai/latent/models"
	"github.com/latent-ai/latent/trainer"
)

const modulePath = "github.com/latent-ai/latent"

type config struct {
	data       string
	threads    int
	out        string
	kinds      []string
	batches    []int
	passes     int
	single     int
	bottleneck int
	seed       int64
	python     string
	torchBatch int
	torchRuns  int
	explore    string
	target     float64
	cli        string
	tags       string // build tags of cmd/latent
	base       string // another latent binary whose encode is timed too, alternating
}

// Result is everything measured for one model kind.
type Result struct {
	Kind       string      `json:"kind"`
	Params     int         `json:"params"`
	Dir        string      `json:"dir"`
	ORT        ORTResult   `json:"ort"`
	Torch      TorchResult `json:"torch"`
	Ratio      float64     `json:"ratio_images_per_sec"`
	Encode     []EncodeRun `json:"encode,omitempty"`
	RatioP50   float64     `json:"ratio_p50"`
	Explore    []Variant   `json:"explore,omitempty"`
	ExploreErr string      `json:"explore_error,omitempty"`
}

// Report is the JSON line printed last.
type Report struct {
	Bench      string   `json:"bench"`
	Time       string   `json:"time"`
	Host       string   `json:"host"`
	CPUs       int      `json:"cpus"`
	GoVersion  string   `json:"go"`
	ORTVersion string   `json:"onnxruntime"`
	ORTLibrary string   `json:"onnxruntime_library"`
	Threads    int      `json:"threads"`
	Data       string   `json:"data"`
	N          int      `json:"n"`
	Bottleneck int      `json:"bottleneck"`
	Seed       int64    `json:"seed"`
	Passes     int      `json:"passes"`
	Single     int      `json:"single"`
	TorchRuns  int      `json:"torch_runs"`
	TorchBatch int      `json:"torch_batch"`
	LoadBefore string   `json:"load_before"`
	LoadAfter  string   `json:"load_after"`
	Models     []Result `json:"models"`
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench/inference:", err)
		os.Exit(1)
	}
}

func run() error {
	var c config
	var kinds, batches string
	flag.StringVar(&c.data, "data", "", "MNIST folder (default $LATENT_DATA, else shared/datasets/mnist beside the repository)")
	flag.IntVar(&c.threads, "threads", 2, "intra-op threads for ONNX Runtime and PyTorch")
	flag.StringVar(&c.out, "out", "", "folder for KIND/model.safetensors, encoder.onnx, decoder.onnx (default a temporary folder, removed at the end)")
	flag.StringVar(&kinds, "kinds", "classic,conv", "model kinds to time, comma-separated")
	flag.StringVar(&batches, "batches", "250,1000,4000", "batch sizes (Options.MaxBatch) to try for the 60k encode, comma-separated")
	flag.IntVar(&c.passes, "passes", 3, "timed passes over the 60k set per batch size (after one warm-up pass); the best counts")
	flag.IntVar(&c.single, "single", 1000, "single-image Encode calls to time")
	flag.IntVar(&c.bottleneck, "bottleneck", 10, "code size")
	flag.Int64Var(&c.seed, "seed", 1, "seed of trainer.Init")
	flag.StringVar(&c.python, "python", "/usr/bin/python3", "Python with torch, for bench/torch_infer.py")
	flag.IntVar(&c.torchBatch, "torch-batch", 1000, "torch_infer.py --batch")
	flag.IntVar(&c.torchRuns, "torch-runs", 3, "runs of torch_infer.py per model; the best images/s and the best p50/p99 count")
	flag.StringVar(&c.explore, "explore", "auto", "time other ONNX Runtime session options too: auto (when a ratio is under --target), on or off")
	flag.Float64Var(&c.target, "target", 3, "target ratio of ORT to PyTorch images/s")
	flag.StringVar(&c.tags, "tags", "openblas isal", "build tags of the latent binary that the encode timings build (the Makefile's)")
	flag.StringVar(&c.base, "base", "", "a latent binary built from another commit: its latent encode --split all is timed too, its passes alternating with this checkout's")
	encodeCLI := flag.Bool("encode", true, "also time latent encode --split all end to end (built from this checkout), against the package's rate")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: go run ./bench/inference [flags]\n\n"+
			"Times ONNX Runtime (package inference) against PyTorch eval encoding MNIST's 60k training images.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", flag.Args())
	}
	c.kinds = splitList(kinds)
	var err error
	if c.batches, err = parseInts(batches); err != nil {
		return fmt.Errorf("--batches: %w", err)
	}
	if c.threads < 1 || c.passes < 1 || c.single < 1 || c.torchRuns < 1 || c.torchBatch < 1 {
		return errors.New("--threads, --passes, --single, --torch-runs and --torch-batch must be at least 1")
	}
	switch c.explore {
	case "auto", "on", "off":
	default:
		return fmt.Errorf("--explore %q: want auto, on or off", c.explore)
	}
	root, err := repoRoot()
	if err != nil {
		return err
	}
	if c.data, err = findData(c.data, root); err != nil {
		return err
	}
	script := filepath.Join(root, "bench", "torch_infer.py")
	if _, err := os.Stat(script); err != nil {
		return err
	}

	libPath, ortVersion, err := inference.Runtime()
	if err != nil {
		return err
	}
	rep := Report{
		Bench: "bench/inference", Time: time.Now().UTC().Format(time.RFC3339), CPUs: runtime.NumCPU(),
		GoVersion: runtime.Version(), ORTVersion: ortVersion, ORTLibrary: libPath,
		Threads: c.threads, Data: c.data, Bottleneck: c.bottleneck, Seed: c.seed,
		Passes: c.passes, Single: c.single, TorchRuns: c.torchRuns, TorchBatch: c.torchBatch,
	}
	rep.Host, _ = os.Hostname()
	rep.LoadBefore = loadAverage()
	fmt.Printf("load before: %s\n", rep.LoadBefore)
	fmt.Printf("ONNX Runtime %s (%s), %s, %d CPUs, %d threads\n", ortVersion, libPath, runtime.Version(), runtime.NumCPU(), c.threads)

	set, err := dataset.Load(dataset.MNIST, c.data, dataset.Train)
	if err != nil {
		return err
	}
	rep.N = set.N
	fmt.Printf("MNIST train: %d images from %s\n", set.N, c.data)

	out := c.out
	if out == "" {
		if out, err = os.MkdirTemp("", "latent-bench-inference"); err != nil {
			return err
		}
		defer os.RemoveAll(out)
	}
	if *encodeCLI {
		if c.cli, err = buildCLI(root, out, c.tags); err != nil {
			return err
		}
	}

	for _, kind := range c.kinds {
		r, err := benchKind(c, kind, out, set, script, root)
		if err != nil {
			return fmt.Errorf("%s: %w", kind, err)
		}
		rep.Models = append(rep.Models, r)
	}
	rep.LoadAfter = loadAverage()

	fmt.Println()
	printTable(c, rep)
	for _, r := range rep.Models {
		if len(r.Explore) > 0 {
			printExplore(r)
		}
	}
	fmt.Printf("\nload before: %s\nload after:  %s\n", rep.LoadBefore, rep.LoadAfter)
	b, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	fmt.Printf("\nJSON: %s\n", b)
	return nil
}

func benchKind(c config, kind, out string, set *dataset.Set, script, root string) (Result, error) {
	arch, err := models.New(kind, c.bottleneck)
	if err != nil {
		return Result{}, err
	}
	dir := filepath.Join(out, kind)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Result{}, err
	}
	m := trainer.Init(arch, c.seed).Model()
	m.Meta.Dataset = dataset.MNIST
	modelPath := filepath.Join(dir, "model.safetensors")
	if err := m.Save(modelPath); err != nil {
		return Result{}, err
	}
	if _, _, err := exporter.Export(m, nil, dir); err != nil {
		return Result{}, err
	}
	r := Result{Kind: kind, Params: arch.NumParams(), Dir: dir}
	fmt.Printf("\n== %s (%d parameters) in %s\n", kind, r.Params, dir)

	if r.ORT, err = benchORT(c, dir, set); err != nil {
		return r, err
	}
	if c.cli != "" {
		if r.Encode, err = benchEncode(c, dir, r.ORT.ImagesPerSec); err != nil {
			return r, err
		}
	}
	if r.Torch, err = benchTorch(c, script, root, modelPath); err != nil {
		return r, err
	}
	r.Ratio = r.ORT.ImagesPerSec / r.Torch.ImagesPerSec
	r.RatioP50 = r.Torch.P50us / r.ORT.P50us
	fmt.Printf("%s: ORT %.0f images/s, PyTorch %.0f images/s: %.2fx\n", kind, r.ORT.ImagesPerSec, r.Torch.ImagesPerSec, r.Ratio)

	if c.explore == "on" || (c.explore == "auto" && r.Ratio < c.target) {
		fmt.Printf("-- %s: exploring ONNX Runtime session options at batch %d\n", kind, r.ORT.BestBatch)
		if r.Explore, err = explore(c, dir, set, r.ORT.BestBatch); err != nil {
			// Keep what the main benchmark measured.
			r.ExploreErr = err.Error()
			fmt.Fprintf(os.Stderr, "explore %s: %v\n", kind, err)
		}
	}
	return r, nil
}

func printTable(c config, rep Report) {
	fmt.Printf("Encoding %d MNIST training images on the CPU, %d intra-op threads (ORT: best batch of %v, best of %d passes; PyTorch: batch %d, best of %d runs)\n",
		rep.N, c.threads, c.batches, c.passes, c.torchBatch, c.torchRuns)
	fmt.Printf("%-8s %12s %12s %7s %6s %17s %17s\n", "model", "ORT img/s", "PyTorch img/s", "ratio", "batch", "ORT p50/p99 us", "PyTorch p50/p99 us")
	for _, r := range rep.Models {
		mark := ""
		if r.Ratio < c.target {
			mark = " (<" + strconv.FormatFloat(c.target, 'g', -1, 64) + "x)"
		}
		fmt.Printf("%-8s %12.0f %13.0f %6.2fx %6d %8.1f/%-8.1f %8.1f/%-8.1f%s\n",
			r.Kind, r.ORT.ImagesPerSec, r.Torch.ImagesPerSec, r.Ratio, r.ORT.BestBatch,
			r.ORT.P50us, r.ORT.P99us, r.Torch.P50us, r.Torch.P99us, mark)
	}
	for _, r := range rep.Models {
		for _, e := range r.Encode {
			fmt.Printf("  %s latent encode --split all %s: %.0f images/s end to end, %.0f%% of the package's %.0f\n",
				r.Kind, e.Flags, e.ImagesPerSec, 100*e.Share, r.ORT.ImagesPerSec)
		}
	}
	for _, r := range rep.Models {
		var parts []string
		for _, b := range r.ORT.Batches {
			parts = append(parts, fmt.Sprintf("%d: %.0f", b.Batch, b.ImagesPerSec))
		}
		fmt.Printf("  %s ORT images/s by batch: %s\n", r.Kind, strings.Join(parts, ", "))
	}
}

// repoRoot walks up from the working folder to the go.mod of this module.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		b, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil && strings.Contains(string(b), "module "+modulePath+"\n") {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod of %s in %s or above: run from the repository (or use bench/inference.sh)", modulePath, dir)
		}
	}
}

// findData returns flagValue, else $LATENT_DATA, else the first of
// ROOT/../shared/datasets/mnist and /work/shared/datasets/mnist that holds
// the training images.
func findData(flagValue, root string) (string, error) {
	if flagValue != "" {
		return flagValue, nil
	}
	if v := os.Getenv(dataset.EnvData); v != "" {
		return v, nil
	}
	cands := []string{filepath.Join(filepath.Dir(root), "shared", "datasets", "mnist"), "/work/shared/datasets/mnist"}
	for _, d := range cands {
		for _, f := range []string{"train-images-idx3-ubyte.gz", "train-images-idx3-ubyte"} {
			if _, err := os.Stat(filepath.Join(d, f)); err == nil {
				return d, nil
			}
		}
	}
	return "", fmt.Errorf("MNIST not found in %q: give --data DIR or set $%s", cands, dataset.EnvData)
}

// loadAverage is uptime's output, or /proc/loadavg when uptime is missing.
func loadAverage() string {
	if b, err := exec.Command("uptime").Output(); err == nil {
		s := strings.TrimSpace(string(b))
		if i := strings.Index(s, "load average"); i >= 0 {
			return s[i:]
		}
		return s
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		return "loadavg " + strings.TrimSpace(string(b))
	}
	return "unknown"
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range splitList(s) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive integer", f)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, errors.New("no batch sizes")
	}
	return out, nil
}
