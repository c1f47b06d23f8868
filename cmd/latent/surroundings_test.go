//go:build linux

package main

// Tests of latent in bad surroundings: a full disk, a read-only output
// folder and a missing data folder. Each case runs a real command as a
// child process (see TestMain) and checks that it fails with exit status 1
// and one line on stderr that names the path and says what to do, without
// a panic, and that it leaves nothing half-written behind: no temporary
// file, no empty or partial output, no new run folder, and every file that
// was there before byte for byte as it was.
//
// The full disk is a small tmpfs, so the writes fail with a genuine ENOSPC;
// where mounting is not permitted, the child's file size limit
// (RLIMIT_FSIZE, so EFBIG) stands in for it. The read-only folder is a
// tmpfs remounted read-only; failing that, a folder with mode 0555 and, as
// root, a child run as nobody. LATENT_TEST_NO_MOUNT=1 forces the fallbacks.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/latent-ai/latent/checkpoint"
	"github.com/latent-ai/latent/dataset"
	"github.com/latent-ai/latent/exporter"
	"github.com/latent-ai/latent/internal/mnisttest"
	"github.com/latent-ai/latent/latentstats"
	"github.com/latent-ai/latent/models"
	"github.com/latent-ai/latent/onnxmeta"
	"github.com/latent-ai/latent/pca"
	"github.com/latent-ai/latent/trainer"
)

// envFileSize, in the child, limits the size of the files it writes.
const envFileSize = "LATENT_TEST_FSIZE"

func init() {
	// This runs before TestMain, in the child as in the parent. Go
	// ignores SIGXFSZ, so a write past the limit fails with EFBIG.
	if os.Getenv("LATENT_TEST_AS_CLI") != "1" || os.Getenv(envFileSize) == "" {
		return
	}
	n, err := strconv.ParseUint(os.Getenv(envFileSize), 10, 64)
	if err == nil {
		var lim syscall.Rlimit
		if err = syscall.Getrlimit(syscall.RLIMIT_FSIZE, &lim); err == nil {
			lim.Cur = n
			err = syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim)
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", envFileSize, err)
		os.Exit(3)
	}
}

// mountTmpfs mounts a tmpfs of size bytes on a new empty folder and
// returns the folder; the test unmounts it when it ends. It returns "" and
// why when mounting is not permitted here.
func mountTmpfs(t *testing.T, size int64) (string, string) {
	t.Helper()
	if os.Getenv("LATENT_TEST_NO_MOUNT") == "1" {
		return "", "LATENT_TEST_NO_MOUNT=1"
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0755", size)); err != nil {
		return "", fmt.Sprintf("cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
				t.Errorf("unmount %s: %v", dir, err)
			}
		}
	})
	return dir, ""
}

// fixture is a run folder as latent train and latent export leave it:
// model.safetensors and optimizer.safetensors after one epoch,
// metrics.jsonl, encoder.onnx, decoder.onnx and latent-stats.json. Its
// recipe trains on the first 64 images, so that resuming it is quick.
type fixture struct {
	dir  string
	arch models.Arch
	size map[string]int64 // by file name
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	arch, err := models.New("classic", models.DefaultBottleneck)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := trainer.New(trainer.Config{Arch: arch, Dataset: dataset.MNIST, Epochs: 1, Batch: 64, LR: 1e-3, Limit: 64})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 8))
	pixels := make([]uint8, 64*784)
	for i := range pixels {
		pixels[i] = uint8(rng.IntN(256))
	}
	dir := t.TempDir()
	if _, err := tr.Run(context.Background(), trainerFiles(dir), trainer.Data{Pixels: pixels, N: 64}, trainer.Data{}, trainer.Hooks{}); err != nil {
		t.Fatal(err)
	}
	b := arch.Bottleneck
	codes := make([]float32, 200*b)
	for i := range codes {
		codes[i] = float32(rng.NormFloat64())
	}
	stats, err := pca.Fit(codes, 200, b)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := exporter.Export(tr.Model(), stats, dir); err != nil {
		t.Fatal(err)
	}
	if err := stats.Save(filepath.Join(dir, latentstats.FileName)); err != nil {
		t.Fatal(err)
	}
	f := &fixture{dir: dir, arch: arch, size: map[string]int64{}}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		f.size[e.Name()] = info.Size()
	}
	return f
}

// copyTo copies the named files of the fixture (all of them if none is
// named) into the folder dst, which it creates.
func (f *fixture) copyTo(t *testing.T, dst string, names ...string) {
	t.Helper()
	if len(names) == 0 {
		for name := range f.size {
			names = append(names, name)
		}
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		b, err := os.ReadFile(filepath.Join(f.dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// pages returns the room n bytes take on a tmpfs: whole pages.
func pages(n int64) int64 {
	ps := int64(os.Getpagesize())
	return (n + ps - 1) / ps * ps
}

// runLatent runs latent with args, with env added to the environment and,
// when as is not nil, as another user, and returns its exit status and
// stderr.
func runLatent(t *testing.T, env []string, as *unprivileged, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append(append(os.Environ(), "LATENT_TEST_AS_CLI=1"), env...)
	if as != nil {
		cmd.Path = as.binary
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: as.uid, Gid: as.gid}}
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, stderr.String()
	case errors.As(err, &exit) && exit.ExitCode() >= 0:
		return exit.ExitCode(), stderr.String()
	}
	t.Fatalf("latent %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	return 0, ""
}

// checkFailed checks that latent command failed with exit status 1, no
// panic, and exactly one error line, which contains every string of wants.
func checkFailed(t *testing.T, command string, code int, stderr string, wants ...string) {
	t.Helper()
	if code != 1 {
		t.Errorf("exit status %d, want 1; stderr:\n%s", code, stderr)
	}
	if strings.Contains(stderr, "panic") || strings.Contains(stderr, "goroutine ") {
		t.Errorf("stderr holds a panic or a stack trace:\n%s", stderr)
	}
	var lines []string
	for _, line := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(line, "latent "+command+": ") {
			lines = append(lines, line)
		}
	}
	if len(lines) != 1 {
		t.Fatalf("%d error lines starting with %q, want 1; stderr:\n%s", len(lines), "latent "+command+": ", stderr)
	}
	for _, want := range wants {
		if !strings.Contains(lines[0], want) {
			t.Errorf("error line does not say %q:\n%s", want, lines[0])
		}
	}
	t.Logf("stderr: %s", lines[0])
}

// tree returns every file and folder under dir, by path relative to dir:
// "dir" for a folder, "empty" for an empty file, else the SHA-256 of the
// content.
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if d.IsDir() {
			out[rel] = "dir"
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		h := sha256.New()
		n, err := io.Copy(h, f)
		if err != nil {
			return err
		}
		out[rel] = hex.EncodeToString(h.Sum(nil))
		if n == 0 {
			out[rel] = "empty"
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// checkLeft checks what a failed command left in dir: every file and
// folder of before unchanged, the paths of added and nothing else new, no
// hidden (temporary) file or folder and no empty file.
func checkLeft(t *testing.T, dir string, before map[string]string, added ...string) {
	t.Helper()
	after := tree(t, dir)
	for path, sum := range before {
		if got, ok := after[path]; !ok {
			t.Errorf("%s is gone", path)
		} else if got != sum {
			t.Errorf("%s changed", path)
		}
	}
	for path, sum := range after {
		if _, ok := before[path]; !ok && !slices.Contains(added, path) {
			t.Errorf("%s left behind", path)
		}
		for _, part := range strings.Split(path, string(filepath.Separator)) {
			if strings.HasPrefix(part, ".") {
				t.Errorf("temporary %s left behind", path)
				break
			}
		}
		if sum == "empty" {
			t.Errorf("empty file %s left behind", path)
		}
	}
	for _, path := range added {
		if _, ok := after[path]; !ok {
			t.Errorf("%s missing", path)
		}
	}
}

// A fullDiskCase runs a command whose output goes to a small disk.
type fullDiskCase struct {
	name    string
	command string
	ort     bool // needs ONNX Runtime
	// prepare puts what the disk holds before the command into disk.
	prepare func(t *testing.T, f *fixture, disk string)
	// size is the size of the disk: what prepare puts there and less room
	// than the command needs.
	size func(f *fixture) int64
	// fileSize is the file size limit that makes the same write fail,
	// the fallback without tmpfs; nil, or 0 from it, if none can.
	fileSize func(f *fixture) int64
	// args returns the command's arguments (after the command).
	args func(f *fixture, disk, data string) []string
	path string // the file or folder, under disk, that the error names
	// fileSizePath is the path, when it is not path, that the error names
	// under the file size limit.
	fileSizePath string
	added        []string // what the command leaves in disk besides prepare's files
	check        func(t *testing.T, disk string)
}

func TestFullDisk(t *testing.T) {
	data := mnisttest.Dir(t)
	f := newFixture(t)
	b := int64(f.arch.Bottleneck)
	codes := pages(128 + 10000*b*4) // codes-test.npy: header and float32 [10000,b]
	runFiles := []string{modelFile, stateFile, metricsFile}
	exported := append(slices.Clone(runFiles), onnxmeta.EncoderFile, onnxmeta.DecoderFile, latentstats.FileName)
	sum := func(f *fixture, names ...string) int64 {
		var n int64
		for _, name := range names {
			n += pages(f.size[name])
		}
		return n
	}
	half := func(name string) func(f *fixture) int64 {
		return func(f *fixture) int64 { return f.size[name] / 2 }
	}
	// Between the encoder and the decoder, which is a little larger.
	betweenParts := func(f *fixture) int64 {
		enc, dec := f.size[onnxmeta.EncoderFile], f.size[onnxmeta.DecoderFile]
		if dec-enc < 1024 {
			return 0
		}
		return (enc + dec) / 2
	}
	trainArgs := func(f *fixture, disk, data string) []string {
		return []string{"--out", filepath.Join(disk, "run"), "--epochs", "1", "--limit", "64", "--data", data, "--quiet"}
	}
	runArgs := func(extra ...string) func(f *fixture, disk, data string) []string {
		return func(f *fixture, disk, data string) []string {
			return append([]string{filepath.Join(disk, "run"), "--data", data, "--quiet", "--threads", "2"}, extra...)
		}
	}
	encodeArgs := func(f *fixture, disk, data string) []string {
		return []string{f.dir, "--out", filepath.Join(disk, "codes.npy"), "--data", data, "--quiet", "--threads", "2"}
	}
	copyRun := func(names ...string) func(t *testing.T, f *fixture, disk string) {
		return func(t *testing.T, f *fixture, disk string) { f.copyTo(t, filepath.Join(disk, "run"), names...) }
	}

	tests := []fullDiskCase{{
		name: "train: the first checkpoint does not fit", command: "train",
		size:     func(f *fixture) int64 { return pages(f.size[stateFile]) / 2 },
		fileSize: half(stateFile),
		args:     trainArgs, path: "run/" + stateFile,
	}, {
		name: "train: the training state fits, the model does not", command: "train",
		size: func(f *fixture) int64 { return sum(f, stateFile) + pages(f.size[modelFile])/2 },
		args: trainArgs, path: "run/" + modelFile,
	}, {
		name: "train: the start is saved, the first epoch does not fit", command: "train",
		size: func(f *fixture) int64 {
			return sum(f, stateFile, modelFile) + pages(f.size[stateFile])/2
		},
		args: trainArgs, path: "run/" + stateFile,
		added: []string{"run", "run/" + modelFile, "run/" + stateFile},
		check: func(t *testing.T, disk string) {
			run := filepath.Join(disk, "run")
			m, err := checkpoint.Load(filepath.Join(run, modelFile))
			if err != nil {
				t.Fatalf("the model saved at the start does not load: %v", err)
			}
			if m.Meta.Epochs != 0 {
				t.Errorf("the model is after epoch %d, want 0", m.Meta.Epochs)
			}
			if _, err := trainer.Resume(trainerFiles(run), 0); err != nil {
				t.Errorf("the run cannot be resumed: %v", err)
			}
		},
	}, {
		name: "train --resume: the earlier checkpoint survives", command: "train",
		prepare:  copyRun(runFiles...),
		size:     func(f *fixture) int64 { return sum(f, runFiles...) + pages(f.size[stateFile])/2 },
		fileSize: half(stateFile),
		args: func(f *fixture, disk, data string) []string {
			return []string{"--resume", filepath.Join(disk, "run"), "--epochs", "2", "--data", data, "--quiet"}
		},
		path: "run/" + stateFile,
	}, {
		name: "export: nothing fits", command: "export", ort: true,
		prepare:  copyRun(modelFile),
		size:     func(f *fixture) int64 { return sum(f, modelFile) + pages(f.size[onnxmeta.EncoderFile])/2 },
		fileSize: half(onnxmeta.EncoderFile),
		args:     runArgs(), path: "run",
	}, {
		name: "export: the encoder fits, the decoder does not", command: "export", ort: true,
		prepare: copyRun(modelFile),
		size: func(f *fixture) int64 {
			return sum(f, modelFile, latentstats.FileName, onnxmeta.EncoderFile) + pages(f.size[onnxmeta.DecoderFile])/2
		},
		fileSize: betweenParts,
		args:     runArgs(), path: "run/" + onnxmeta.DecoderFile,
	}, {
		name: "export: the earlier export survives", command: "export", ort: true,
		prepare: copyRun(exported...),
		size: func(f *fixture) int64 {
			return sum(f, exported...) + sum(f, latentstats.FileName, onnxmeta.EncoderFile) + pages(f.size[onnxmeta.DecoderFile])/2
		},
		fileSize: betweenParts,
		args:     runArgs(), path: "run/" + onnxmeta.DecoderFile,
	}, {
		name: "encode: the codes do not fit", command: "encode", ort: true,
		size:     func(f *fixture) int64 { return codes / 2 },
		fileSize: func(f *fixture) int64 { return codes / 2 },
		args:     encodeArgs, path: "codes.npy",
	}, {
		name: "encode: the codes fit, the labels do not", command: "encode", ort: true,
		size: func(f *fixture) int64 { return codes + int64(os.Getpagesize()) },
		args: encodeArgs, path: "codes-labels.npy",
	}, {
		name: "encode: earlier codes survive", command: "encode", ort: true,
		prepare: func(t *testing.T, f *fixture, disk string) {
			for _, name := range []string{"codes.npy", "codes-labels.npy"} {
				if err := os.WriteFile(filepath.Join(disk, name), []byte("earlier "+name), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		},
		size:     func(f *fixture) int64 { return 3*int64(os.Getpagesize()) + codes },
		fileSize: func(f *fixture) int64 { return codes / 2 },
		args:     encodeArgs, path: "codes-labels.npy", fileSizePath: "codes.npy",
	}, {
		// The slowest case: report scores the codes before it writes.
		name: "report: the figures do not fit", command: "report", ort: true,
		prepare:  copyRun(exported...),
		size:     func(f *fixture) int64 { return sum(f, exported...) + 64<<10 },
		fileSize: func(f *fixture) int64 { return 4096 },
		args:     runArgs("--samples", "0"), path: "run/report",
		added: []string{"run/" + evalFile}, // complete, written before the figures
	}}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.ort {
				ortNeedRuntime(t)
			}
			// The full disk: a tmpfs of the case's size, or a folder and a
			// file size limit.
			var env []string
			wants := []string{"no space left on device", "free some space on that disk"}
			disk, why := mountTmpfs(t, tt.size(f))
			if disk == "" {
				if tt.fileSize == nil || tt.fileSize(f) == 0 {
					t.Skipf("%s, and no file size limit can make this write fail alone", why)
				}
				t.Logf("%s: limiting the file size to %d bytes instead", why, tt.fileSize(f))
				disk = t.TempDir()
				env = []string{fmt.Sprintf("%s=%d", envFileSize, tt.fileSize(f))}
				wants = []string{"file too large", "ulimit -f"}
				if tt.fileSizePath != "" {
					tt.path = tt.fileSizePath
				}
			}
			if tt.prepare != nil {
				tt.prepare(t, f, disk)
			}
			before := tree(t, disk)

			code, stderr := runLatent(t, env, nil, append([]string{tt.command}, tt.args(f, disk, data)...)...)
			checkFailed(t, tt.command, code, stderr, append(wants, filepath.Join(disk, tt.path))...)
			checkLeft(t, disk, before, tt.added...)
			if tt.check != nil {
				tt.check(t, disk)
			}
		})
	}
}

// unprivileged is how to run the child as another user: a copy of the
// test binary that the user can run, and the user's ids.
type unprivileged struct {
	binary   string
	uid, gid uint32
}

// readOnlyFolder returns a folder, holding what prepare puts there, that
// the child cannot write into; how to run the child (nil: as it is); and
// what the error should say. It prefers a tmpfs remounted read-only, else
// a folder of mode 0555, which root can write into, so root runs the child
// as nobody. It skips the test if neither works.
func readOnlyFolder(t *testing.T, prepare func(dir string)) (string, *unprivileged, []string) {
	t.Helper()
	dir, why := mountTmpfs(t, 64<<20)
	if dir != "" {
		prepare(dir)
		if err := syscall.Mount("tmpfs", dir, "", syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err == nil {
			return dir, nil, []string{"read-only file system", "remount it read-write"}
		} else {
			why = fmt.Sprintf("cannot remount a tmpfs read-only: %v", err)
		}
	}
	t.Logf("%s: using a folder of mode 0555 instead", why)
	dir = t.TempDir()
	prepare(dir)
	// Let nobody reach the folder, and make it and what it holds read-only.
	if err := os.Chmod(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	var dirs []string
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, path)
		}
		return err
	})
	for _, d := range dirs {
		if err := os.Chmod(d, 0o555); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, d := range dirs {
			os.Chmod(d, 0o755)
		}
	})
	wants := []string{"permission denied", "check the permissions"}
	if os.Geteuid() != 0 {
		return dir, nil, wants
	}
	bin := t.TempDir()
	if err := os.Chmod(filepath.Dir(bin), 0o755); err != nil {
		t.Fatal(err)
	}
	exe, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	as := &unprivileged{binary: filepath.Join(bin, "latent.test"), uid: 65534, gid: 65534}
	if err := os.WriteFile(as.binary, exe, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(as.binary, "help")
	cmd.Env = append(os.Environ(), "LATENT_TEST_AS_CLI=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: as.uid, Gid: as.gid}}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Skipf("%s, and as root the test cannot run latent as nobody (uid 65534), whom mode 0555 would stop: %v\n%s", why, err, out)
	}
	return dir, as, wants
}

func TestReadOnlyFolder(t *testing.T) {
	data := mnisttest.Dir(t)
	f := newFixture(t)
	dir, as, wants := readOnlyFolder(t, func(dir string) { f.copyTo(t, filepath.Join(dir, "run")) })
	before := tree(t, dir)
	run := filepath.Join(dir, "run")
	// Every command checks that it can write before its long work, so
	// none of these needs ONNX Runtime or reads the data.
	tests := []struct {
		name, command string
		args          []string
		path          string // that the error names
	}{
		{"train: a new run", "train",
			[]string{"--out", filepath.Join(dir, "new"), "--epochs", "1", "--limit", "64", "--data", data, "--quiet"}, dir},
		{"train --resume", "train", []string{"--resume", run, "--epochs", "2", "--data", data, "--quiet"}, run},
		{"train --force", "train", []string{"--out", run, "--force", "--epochs", "1", "--limit", "64", "--data", data, "--quiet"}, run},
		{"export", "export", []string{run, "--data", data, "--quiet"}, run},
		{"export --no-stats", "export", []string{run, "--no-stats"}, filepath.Join(run, onnxmeta.EncoderFile)},
		{"encode", "encode", []string{run, "--data", data, "--quiet"}, run},
		{"report", "report", []string{run, "--data", data, "--quiet"}, run},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stderr := runLatent(t, nil, as, append([]string{tt.command}, tt.args...)...)
			checkFailed(t, tt.command, code, stderr, append([]string{tt.path}, wants...)...)
			checkLeft(t, dir, before)
		})
	}
}

func TestMissingData(t *testing.T) {
	mnist := mnisttest.Dir(t)
	f := newFixture(t)
	// Downloads fail at once, network or not: every request goes to a
	// proxy that is not there.
	noNetwork := []string{"HTTP_PROXY=http://127.0.0.1:1", "HTTPS_PROXY=http://127.0.0.1:1",
		"http_proxy=http://127.0.0.1:1", "https_proxy=http://127.0.0.1:1", "NO_PROXY=", "no_proxy="}
	wants := []string{"cannot download", "without network access", "copy the files", "--data or $LATENT_MNIST"}
	tests := []struct {
		name, command string
		ort           bool
		data          string // the data folder, under the test's folder
		// prepare makes the data folder, when it exists.
		prepare func(t *testing.T, data string)
		env     []string
		// args returns the arguments after the command; run is a copy of
		// the fixture.
		args  func(base, run, data string) []string
		wants []string // besides the data folder and wants
	}{{
		name: "train: --data names no folder", command: "train", data: "no/such/mnist",
		args: func(base, run, data string) []string {
			return []string{"--out", filepath.Join(base, "new"), "--data", data, "--epochs", "1", "--quiet"}
		},
	}, {
		name: "train: $LATENT_DATA names no folder", command: "train", data: "nodata",
		env: []string{dataset.EnvData + "={data}"},
		args: func(base, run, data string) []string {
			return []string{"--out", filepath.Join(base, "new"), "--epochs", "1", "--quiet"}
		},
	}, {
		name: "train: the data folder is empty", command: "train", data: "empty",
		prepare: func(t *testing.T, data string) {
			if err := os.Mkdir(data, 0o755); err != nil {
				t.Fatal(err)
			}
		},
		args: func(base, run, data string) []string {
			return []string{"--out", filepath.Join(base, "new"), "--data", data, "--epochs", "1", "--quiet"}
		},
	}, {
		name: "train: the data folder lacks the test files", command: "train", data: "half",
		prepare: func(t *testing.T, data string) {
			if err := os.Mkdir(data, 0o755); err != nil {
				t.Fatal(err)
			}
			for _, name := range []string{"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"} {
				if err := os.Symlink(filepath.Join(mnist, name), filepath.Join(data, name)); err != nil {
					t.Fatal(err)
				}
			}
		},
		args: func(base, run, data string) []string {
			return []string{"--out", filepath.Join(base, "new"), "--data", data, "--epochs", "1", "--limit", "64", "--quiet"}
		},
		wants: []string{"t10k-images-idx3-ubyte.gz"},
	}, {
		name: "train --resume", command: "train", data: "nodata",
		args: func(base, run, data string) []string {
			return []string{"--resume", run, "--epochs", "2", "--data", data, "--quiet"}
		},
	}, {
		name: "train --force over an earlier run", command: "train", data: "nodata",
		args: func(base, run, data string) []string {
			return []string{"--out", run, "--force", "--data", data, "--epochs", "1", "--quiet"}
		},
	}, {
		name: "export", command: "export", ort: true, data: "nodata",
		args: func(base, run, data string) []string {
			return []string{run, "--data", data, "--quiet", "--threads", "2"}
		},
	}, {
		name: "encode", command: "encode", ort: true, data: "nodata",
		args: func(base, run, data string) []string {
			return []string{run, "--data", data, "--quiet", "--threads", "2"}
		},
	}, {
		name: "report", command: "report", ort: true, data: "nodata",
		args: func(base, run, data string) []string {
			return []string{run, "--data", data, "--quiet", "--threads", "2"}
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.ort {
				ortNeedRuntime(t)
			}
			base := t.TempDir()
			run := filepath.Join(base, "run")
			f.copyTo(t, run)
			data := filepath.Join(base, tt.data)
			if tt.prepare != nil {
				tt.prepare(t, data)
			}
			env := append(slices.Clone(noNetwork), dataset.EnvData+"=")
			for _, e := range tt.env {
				env = append(env, strings.ReplaceAll(e, "{data}", data))
			}
			before := tree(t, base)
			code, stderr := runLatent(t, env, nil, append([]string{tt.command}, tt.args(base, run, data)...)...)
			checkFailed(t, tt.command, code, stderr, append(append([]string{data}, wants...), tt.wants...)...)
			// No run folder, no data folder: nothing but what was there.
			checkLeft(t, base, before)
		})
	}
}
