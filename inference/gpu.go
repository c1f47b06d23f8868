package inference

import (
	"bufio"
	"debug/elf"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// GPULibraryVersion is the ONNX Runtime GPU build that
// scripts/setup-onnxruntime.sh --cuda (make setup-cuda) installs: Microsoft's
// linux-x64-gpu release, whose CUDA provider needs CUDA 13 and cuDNN 9.
const GPULibraryVersion = "1.29.0"

// CachedGPULibraryPath is where setup-onnxruntime.sh --cuda puts the GPU
// build's core library, with its provider libraries beside it:
// CacheDir()/onnxruntime-gpu-<GPULibraryVersion>/libonnxruntime.so. The
// devices "cuda" and "auto" load it when it is there, unless
// $ONNXRUNTIME_SHARED_LIBRARY_PATH names a library.
func CachedGPULibraryPath() string {
	return filepath.Join(CacheDir(), "onnxruntime-gpu-"+GPULibraryVersion, "libonnxruntime.so")
}

// A Provider is an execution provider library found beside an ONNX Runtime
// core library, and what it lacks on this machine.
type Provider struct {
	Name string // "cuda" or "tensorrt"
	Path string
	// Missing lists the shared libraries the provider needs that this
	// machine's library search path does not hold (Needs says what
	// provides them). Empty when it can load.
	Missing []string
}

// Needs describes p.Missing for people: the libraries grouped by what
// provides them, such as "libcudart.so.13, libcublas.so.13 (the CUDA 13
// toolkit or runtime), libcuda.so.1 (the NVIDIA driver)".
func (p Provider) Needs() string {
	var order []string
	groups := map[string][]string{}
	for _, m := range p.Missing {
		h := installHint(m)
		if groups[h] == nil {
			order = append(order, h)
		}
		groups[h] = append(groups[h], m)
	}
	parts := make([]string, len(order))
	for i, h := range order {
		parts[i] = strings.Join(groups[h], ", ") + " (" + h + ")"
	}
	return strings.Join(parts, ", ")
}

// providerFiles maps the provider names to their libraries' file names.
var providerFiles = []struct{ name, file string }{
	{"cuda", "libonnxruntime_providers_cuda.so"},
	{"tensorrt", "libonnxruntime_providers_tensorrt.so"},
}

// Providers lists the execution provider libraries beside the ONNX Runtime
// core library at core (CUDA, TensorRT), with the libraries each one
// lacks. A CPU-only build has none.
func Providers(core string) []Provider {
	var out []Provider
	for _, pf := range providerFiles {
		p := filepath.Join(filepath.Dir(core), pf.file)
		if _, err := os.Stat(p); err != nil {
			continue
		}
		pr := Provider{Name: pf.name, Path: p}
		missing, err := missingLibraries(p)
		if err != nil {
			missing = []string{fmt.Sprintf("%s (unreadable: %v)", pf.file, err)}
		}
		if pf.name == "cuda" && findLibrary("libcudnn.so.9", nil) == "" {
			missing = append(missing, "libcudnn.so.9") // loaded at run time, not linked
		}
		pr.Missing = missing
		out = append(out, pr)
	}
	return out
}

// installHint says what provides the shared library name.
func installHint(name string) string {
	switch {
	case strings.HasPrefix(name, "libcuda.so"):
		return "the NVIDIA driver"
	case strings.HasPrefix(name, "libcudnn"):
		return "cuDNN 9 for CUDA 13"
	case strings.HasPrefix(name, "libnvinfer"), strings.HasPrefix(name, "libnvonnxparser"):
		return "TensorRT 10"
	case strings.HasPrefix(name, "libcu"), strings.HasPrefix(name, "libnv"):
		return "the CUDA 13 toolkit or runtime"
	}
	return "a system library"
}

// missingLibraries returns the libraries that the ELF file at path links
// against (DT_NEEDED) and that the dynamic loader would not find.
func missingLibraries(path string) ([]string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	needed, err := f.DynString(elf.DT_NEEDED)
	if err != nil {
		return nil, err
	}
	var runpath []string
	for _, tag := range []elf.DynTag{elf.DT_RUNPATH, elf.DT_RPATH} {
		entries, _ := f.DynString(tag)
		for _, e := range entries {
			for _, d := range filepath.SplitList(e) {
				runpath = append(runpath, strings.ReplaceAll(strings.ReplaceAll(d, "${ORIGIN}", "$ORIGIN"), "$ORIGIN", filepath.Dir(path)))
			}
		}
	}
	var missing []string
	for _, n := range needed {
		if findLibrary(n, runpath) == "" {
			missing = append(missing, n)
		}
	}
	return missing, nil
}

// findLibrary returns the path where the dynamic loader would find the
// shared library name: in extra, $LD_LIBRARY_PATH, the folders of
// /etc/ld.so.conf, or the system's own; "" if none holds it.
func findLibrary(name string, extra []string) string {
	dirs := slices.Clone(extra)
	dirs = append(dirs, filepath.SplitList(os.Getenv("LD_LIBRARY_PATH"))...)
	dirs = append(dirs, ldConfDirs("/etc/ld.so.conf", 0)...)
	dirs = append(dirs, "/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib")
	for _, d := range dirs {
		if d == "" {
			continue
		}
		p := filepath.Join(d, name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// ldConfDirs returns the folders that the ld.so.conf file at path lists,
// following its include lines.
func ldConfDirs(path string, depth int) []string {
	f, err := os.Open(path)
	if err != nil || depth > 4 {
		return nil
	}
	defer f.Close()
	var dirs []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		if rest, ok := strings.CutPrefix(line, "include "); ok {
			matches, _ := filepath.Glob(strings.TrimSpace(rest))
			for _, m := range matches {
				dirs = append(dirs, ldConfDirs(m, depth+1)...)
			}
			continue
		}
		if line != "" {
			dirs = append(dirs, line)
		}
	}
	return dirs
}

// cudaError explains why the core library at core cannot run the CUDA
// provider, or returns nil when it has the provider and every library the
// provider needs.
func cudaError(core, version string) error {
	for _, p := range Providers(core) {
		if p.Name != "cuda" {
			continue
		}
		if len(p.Missing) == 0 {
			return nil
		}
		return fmt.Errorf("ONNX Runtime %s's CUDA provider (%s) needs %s, which this machine lacks: install them (the README's GPU section says how), or use the cpu device (--device cpu)",
			version, p.Path, p.Needs())
	}
	hint := "run make setup-cuda (scripts/setup-onnxruntime.sh --cuda) to install the GPU build"
	if _, err := os.Stat(CachedGPULibraryPath()); err == nil && core != CachedGPULibraryPath() {
		hint = fmt.Sprintf("the GPU build is installed at %s, but this process loaded the CPU library first: open the CUDA model first, or set %s to the GPU build", CachedGPULibraryPath(), LibraryEnv)
	}
	return fmt.Errorf("ONNX Runtime %s at %s is a CPU-only build, without the CUDA provider: %s; or use the cpu device (--device cpu)", version, core, hint)
}

// shortORTError keeps the part of an ONNX Runtime error that matters: its
// first line, cut at 300 bytes.
func shortORTError(err error) string {
	msg := err.Error()
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	return msg
}
