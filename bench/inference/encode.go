package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// An EncodeRun is latent encode --split all timed end to end (reading and
// inflating the IDX files, the model, writing the .npy), with some flags:
// the best of the passes, and its share of the package's rate on the same
// model (ORT images/s, the images already in memory).
type EncodeRun struct {
	Flags        string    `json:"flags"`
	ImagesPerSec float64   `json:"images_per_sec"`
	Passes       []float64 `json:"passes"`
	Share        float64   `json:"share_of_package"`
	Line         string    `json:"line"` // the command's report of its stages, best pass
}

// buildCLI builds this checkout's cmd/latent into out, with tags.
func buildCLI(root, out, tags string) (string, error) {
	bin := filepath.Join(out, "latent")
	cmd := exec.Command("go", "build", "-tags", tags, "-o", bin, "./cmd/latent")
	cmd.Dir, cmd.Stderr = root, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build cmd/latent: %w", err)
	}
	return bin, nil
}

var encodeRate = regexp.MustCompile(`^\d+ images in \S+ \(([0-9.]+) images/s\)`)

// benchEncode times latent encode DIR --split all, as it runs by default
// (calls in flight on one thread each) and with one call at a time on
// every thread (--calls 1, how it ran before), and, with c.base, the base
// binary's default run, the passes alternating.
func benchEncode(c config, dir string, packageRate float64) ([]EncodeRun, error) {
	type variant struct {
		bin   string
		flags []string
	}
	variants := []variant{{c.cli, nil}, {c.cli, []string{"--calls", "1", "--threads", strconv.Itoa(c.threads)}}}
	if c.base != "" {
		variants = append(variants, variant{c.base, nil})
	}
	runs := make([]EncodeRun, len(variants))
	for pass := 0; pass < c.passes; pass++ {
		for i, v := range variants {
			flags := v.flags
			args := append([]string{"encode", dir, "--split", "all", "--data", c.data,
				"--out", filepath.Join(dir, "codes.npy"), "--quiet"}, flags...)
			cmd := exec.Command(v.bin, args...)
			var stderr bytes.Buffer
			cmd.Stderr, cmd.Stdout = &stderr, nil
			if err := cmd.Run(); err != nil {
				return nil, fmt.Errorf("latent %s: %w: %s", strings.Join(args, " "), err, stderr.String())
			}
			line, _, _ := strings.Cut(stderr.String(), "\n")
			m := encodeRate.FindStringSubmatch(line)
			if m == nil {
				return nil, fmt.Errorf("latent encode printed %q, want its timing line", stderr.String())
			}
			rate, _ := strconv.ParseFloat(m[1], 64)
			r := &runs[i]
			r.Flags = strings.Join(flags, " ")
			if r.Flags == "" {
				r.Flags = "(defaults)"
			}
			if v.bin != c.cli {
				r.Flags = "(defaults, base " + v.bin + ")"
			}
			r.Passes = append(r.Passes, rate)
			if rate > r.ImagesPerSec {
				r.ImagesPerSec, r.Line = rate, line
			}
		}
	}
	for i := range runs {
		runs[i].Share = runs[i].ImagesPerSec / packageRate
		fmt.Printf("latent encode --split all %s: %.0f images/s (passes %.0f), %.0f%% of the package's %.0f\n  %s\n",
			runs[i].Flags, runs[i].ImagesPerSec, runs[i].Passes, 100*runs[i].Share, packageRate, runs[i].Line)
	}
	return runs, nil
}
