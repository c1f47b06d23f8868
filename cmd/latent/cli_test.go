package main

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// TestHelpOnStdout checks that "latent CMD --help" prints the command's
// usage on stdout and exits 0, exactly as "latent help CMD" does, with no
// trailing space on any line; and that a bad flag prints its error and the
// usage on stderr and exits 2.
func TestHelpOnStdout(t *testing.T) {
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		code, stdout, stderr := latentOut(t, n, "--help")
		if code != 0 || stderr != "" || !strings.HasPrefix(stdout, "Usage: latent "+n) {
			t.Errorf("latent %s --help: exit %d, stdout %q, stderr %q", n, code, stdout, stderr)
		}
		_, viaHelp, _ := latentOut(t, "help", n)
		if viaHelp != stdout {
			t.Errorf("latent help %s differs from latent %s --help", n, n)
		}
		for _, line := range strings.Split(stdout, "\n") {
			if strings.TrimRight(line, " \t") != line {
				t.Errorf("latent %s --help: trailing space in %q", n, line)
			}
		}
	}
	code, stdout, stderr := latentOut(t, "encode", "--nope")
	if code != 2 || stdout != "" || !strings.Contains(stderr, "flag provided but not defined: -nope") || !strings.Contains(stderr, "Usage: latent encode") {
		t.Errorf("a bad flag: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	code, stdout, _ = latentOut(t, "--help")
	if code != 0 || !strings.Contains(stdout, "Commands:") {
		t.Errorf("latent --help: exit %d, %q", code, stdout)
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		code, stdout, stderr := latentOut(t, args...)
		if code != 0 || stderr != "" {
			t.Fatalf("latent %v: exit %d, %s", args, code, stderr)
		}
		for _, key := range []string{"latent ", "commit ", "go ", "onnxruntime  1.", "blas ", "kernels ", "inflate "} {
			if !strings.Contains(stdout, "\n"+key) && !strings.HasPrefix(stdout, key) {
				t.Errorf("latent %v says nothing of %q:\n%s", args, strings.TrimSpace(key), stdout)
			}
		}
	}
}

// TestCompletion checks that each shell's script names every command and
// their flags, and that bash accepts its script's syntax.
func TestCompletion(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		code, stdout, stderr := latentOut(t, "completion", shell)
		if code != 0 {
			t.Fatalf("completion %s: exit %d, %s", shell, code, stderr)
		}
		for n := range commands {
			if !strings.Contains(stdout, n) {
				t.Errorf("completion %s: no command %s", shell, n)
			}
		}
		if !strings.Contains(stdout, "bottleneck") || !strings.Contains(stdout, "resume") {
			t.Errorf("completion %s: no flags of train", shell)
		}
		if shell == "bash" {
			cmd := exec.Command("bash", "-n")
			cmd.Stdin = strings.NewReader(stdout)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("bash -n of the bash completion: %v\n%s", err, out)
			}
		}
	}
	if code, _, stderr := latentOut(t, "completion", "tcsh"); code != 2 || !strings.Contains(stderr, "want bash, zsh or fish") {
		t.Errorf("completion tcsh: exit %d, %s", code, stderr)
	}
}

// TestAdviceFitsTheError names a run folder that does not exist to every
// command that takes one: each must say so, and none may suggest
// exporting it.
func TestAdviceFitsTheError(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-run")
	for _, args := range [][]string{
		{"export", missing}, {"encode", missing}, {"decode", missing, "--codes", "x.npy", "--out", "x.png"},
		{"sample", missing}, {"eval", missing}, {"report", missing}, {"serve", missing}, {"info", missing},
		{"train", "--resume", missing},
	} {
		code, _, stderr := latentOut(t, args...)
		if code == 0 || !strings.Contains(stderr, missing) || !strings.Contains(stderr, "not exist") {
			t.Errorf("latent %s: exit %d, %q: want an error saying %s does not exist", strings.Join(args, " "), code, stderr, missing)
		}
		if _, msg, _ := strings.Cut(stderr, ": "); strings.Contains(msg, "latent export") {
			t.Errorf("latent %s suggests exporting a run folder that does not exist: %q", strings.Join(args, " "), stderr)
		}
	}
}

func TestPlural(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want string
	}{{0, "0 epochs"}, {1, "1 epoch"}, {2, "2 epochs"}} {
		if got := plural(tc.n, "epoch"); got != tc.want {
			t.Errorf("plural(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
}

// TestInfoJSONSnakeCase checks that every key of "latent info --json" is
// snake_case.
func TestInfoJSONSnakeCase(t *testing.T) {
	dir := ortRun(t, 4)
	code, stdout, stderr := latentOut(t, "info", dir, "--json")
	if code != 0 {
		t.Fatalf("info --json: exit %d, %s", code, stderr)
	}
	var v any
	if err := json.Unmarshal([]byte(stdout), &v); err != nil {
		t.Fatal(err)
	}
	snake := regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	var walk func(v any, at string)
	walk = func(v any, at string) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if !snake.MatchString(k) {
					t.Errorf("key %q at %s is not snake_case", k, at)
				}
				walk(x, at+"."+k)
			}
		case []any:
			for _, x := range v {
				walk(x, at+"[]")
			}
		}
	}
	walk(v, "")
}

// TestPlainProgressInALog runs train, export and encode with stderr piped
// to a buffer, as "2>log" does: plain lines only, one per epoch for
// training, and a closing line with a rate for the long encodings.
func TestPlainProgressInALog(t *testing.T) {
	ortNeedRuntime(t)
	data := ortMNISTDir(t)
	dir := filepath.Join(t.TempDir(), "run")
	for _, tc := range []struct {
		args  []string
		wants []string
	}{
		{[]string{"train", "--model", "classic", "--epochs", "2", "--limit", "640", "--out", dir, "--data", data},
			[]string{"training classic", ": 2 epochs,", "\nepoch 1/2  train loss", "\nepoch 2/2  train loss"}},
		{[]string{"export", dir, "--data", data},
			[]string{"encoding mnist train: 60000 images in", "images/s)"}},
		{[]string{"encode", dir, "--data", data, "--split", "test"},
			[]string{"encoding mnist test: 10000 images in", "images in ", ": model ", "waiting for reading and decoding ", ", writing "}},
	} {
		cmd := latentCmd(tc.args...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("latent %s: %v\n%s", tc.args[0], err, stderr.String())
		}
		log := stderr.String()
		t.Logf("latent %s 2>log:\n%s", tc.args[0], log)
		if strings.ContainsAny(log, "\r\x1b") {
			t.Errorf("latent %s: a carriage return or escape code in the log: %q", tc.args[0], log)
		}
		for _, w := range tc.wants {
			if !strings.Contains(log, w) {
				t.Errorf("latent %s: the log lacks %q", tc.args[0], w)
			}
		}
		if strings.Contains(log, " 0 images/s") || strings.Contains(log, " 0 samples/s") {
			t.Errorf("latent %s: a rate of zero in %q", tc.args[0], log)
		}
	}
}

// TestSamplesFlag: eval and report refuse a bad --samples before they
// look at the run folder, with a usage error.
func TestSamplesFlag(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-run")
	for _, tc := range []struct {
		n, want string
	}{{"-1", "--samples -1: want 0 or more"}, {"3", "--samples 3: want more than k = 3 (or 0 for none)"}} {
		for _, cmd := range []string{"eval", "report"} {
			code, _, stderr := latentOut(t, cmd, missing, "--samples", tc.n)
			if code != 2 || !strings.Contains(stderr, tc.want) {
				t.Errorf("latent %s --samples %s: exit %d, %q: want 2 and %q", cmd, tc.n, code, stderr, tc.want)
			}
		}
	}
}
