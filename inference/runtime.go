package inference

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

// LibraryVersion is the ONNX Runtime release that scripts/setup-onnxruntime.sh
// installs. onnxruntime_go v1.27 needs ONNX Runtime 1.24 or newer (C API
// version 24); a newer library works too.
const LibraryVersion = "1.24.3"

// LibraryEnv names the environment variable that, when set, gives the path
// of the ONNX Runtime shared library to load, and nothing else is tried.
const LibraryEnv = "ONNXRUNTIME_SHARED_LIBRARY_PATH"

// ErrRuntime is wrapped by every error that says the ONNX Runtime library
// could not be found or loaded.
var ErrRuntime = errors.New("ONNX Runtime is not available")

// CacheDir is latent's cache folder: $LATENT_CACHE, else
// $XDG_CACHE_HOME/latent, else $HOME/.cache/latent.
func CacheDir() string {
	if d := os.Getenv("LATENT_CACHE"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "latent")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		home = "."
	}
	return filepath.Join(home, ".cache", "latent")
}

// CachedLibraryPath is where scripts/setup-onnxruntime.sh puts the library:
// CacheDir()/onnxruntime-<LibraryVersion>/libonnxruntime.so.
func CachedLibraryPath() string {
	return filepath.Join(CacheDir(), "onnxruntime-"+LibraryVersion, "libonnxruntime.so")
}

// The ONNX Runtime environment is process-global: it is set up once, by the
// first call that needs it, and never torn down.
var ortState struct {
	once    sync.Once
	path    string
	version string
	err     error
}

// Runtime loads ONNX Runtime if it is not loaded yet and returns the path of
// the shared library in use and its version; it is RuntimeFor(CPU).
func Runtime() (path, version string, err error) { return RuntimeFor(CPU) }

// RuntimeFor loads ONNX Runtime for the device ("cpu", "cuda" or "auto")
// if it is not loaded yet, and returns the path of the shared library in
// use and its version. It looks for the library at
// $ONNXRUNTIME_SHARED_LIBRARY_PATH if that is set, and otherwise, for
// "cuda" and "auto", at CachedGPULibraryPath() (make setup-cuda), then at
// CachedLibraryPath() and then as libonnxruntime.so through the system's
// library search path. The outcome of the first call, success or failure,
// holds for the life of the process, whatever device later calls name. The
// error wraps ErrRuntime and says how to install the library.
func RuntimeFor(device string) (path, version string, err error) {
	ortState.once.Do(func() {
		ortState.path, ortState.version, ortState.err = loadRuntime(device == CUDA || device == Auto)
	})
	return ortState.path, ortState.version, ortState.err
}

func loadRuntime(gpu bool) (string, string, error) {
	if ort.IsInitialized() {
		// Another package of this process set up the environment already.
		return "(loaded by another package)", ort.GetVersion(), nil
	}
	var candidates []string
	if p := os.Getenv(LibraryEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", "", fmt.Errorf("%w: %s=%s: %v; unset it to use the library that scripts/setup-onnxruntime.sh (or make setup) installs", ErrRuntime, LibraryEnv, p, err)
		}
		candidates = []string{p}
	} else {
		if _, err := os.Stat(CachedGPULibraryPath()); err == nil && gpu {
			candidates = append(candidates, CachedGPULibraryPath())
		}
		if _, err := os.Stat(CachedLibraryPath()); err == nil {
			candidates = append(candidates, CachedLibraryPath())
		}
		candidates = append(candidates, "libonnxruntime.so", "libonnxruntime.so.1")
	}
	var tried []string
	for _, c := range candidates {
		ort.SetSharedLibraryPath(c)
		err := ort.InitializeEnvironment(ort.WithLogLevelError())
		if err == nil {
			return c, ort.GetVersion(), nil
		}
		msg := err.Error()
		if strings.Contains(msg, "ORT API base: 2") {
			msg = "the library is too old: latent needs ONNX Runtime 1.24 or newer (C API version 24)"
		}
		tried = append(tried, fmt.Sprintf("  %s: %s", c, msg))
	}
	return "", "", fmt.Errorf("%w: no usable ONNX Runtime library (version 1.24 or newer) was found; tried:\n%s\n"+
		"Run scripts/setup-onnxruntime.sh (or make setup) to install ONNX Runtime %s into %s, "+
		"or set %s to the path of a libonnxruntime.so",
		ErrRuntime, strings.Join(tried, "\n"), LibraryVersion, filepath.Dir(CachedLibraryPath()), LibraryEnv)
}
