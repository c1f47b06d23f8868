package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
)

// TorchResult is what bench/torch_infer.py measured: the best of its runs.
type TorchResult struct {
	Command      string           `json:"command"`
	Runs         []map[string]any `json:"runs"` // torch_infer.py's JSON, one per run
	ImagesPerSec float64          `json:"images_per_sec"`
	P50us        float64          `json:"single_p50_us"`
	P99us        float64          `json:"single_p99_us"`
	Version      string           `json:"torch"`
}

func benchTorch(c config, script, root, modelPath string) (TorchResult, error) {
	args := []string{script, "--model", modelPath, "--split", "train",
		"--batch", strconv.Itoa(c.torchBatch), "--threads", strconv.Itoa(c.threads),
		"--single", strconv.Itoa(c.single), "--data", c.data}
	r := TorchResult{Command: c.python + " " + strings.Join(args, " ")}
	fmt.Printf("PyTorch: %s\n", r.Command)
	for i := range c.torchRuns {
		cmd := exec.Command(c.python, args...)
		cmd.Dir = root
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			return r, fmt.Errorf("%s: %v\n%s", r.Command, err, strings.TrimSpace(stderr.String()))
		}
		out, err := lastJSON(stdout.String())
		if err != nil {
			return r, fmt.Errorf("%s: %v; its output:\n%s%s", r.Command, err, stdout.String(), stderr.String())
		}
		ips, ok1 := out["images_per_sec"].(float64)
		p50, ok2 := out["single_p50_ms"].(float64)
		p99, ok3 := out["single_p99_ms"].(float64)
		if !ok1 || !ok2 || !ok3 {
			return r, fmt.Errorf("%s: no images_per_sec, single_p50_ms and single_p99_ms numbers in %v", r.Command, out)
		}
		if n, _ := out["n"].(float64); n != 60000 {
			fmt.Printf("note: torch_infer.py encoded %v images\n", out["n"])
		}
		r.Runs = append(r.Runs, out)
		r.Version, _ = out["torch"].(string)
		if i == 0 || ips > r.ImagesPerSec {
			r.ImagesPerSec = ips
		}
		if i == 0 || p50*1e3 < r.P50us {
			r.P50us = p50 * 1e3
		}
		if i == 0 || p99*1e3 < r.P99us {
			r.P99us = p99 * 1e3
		}
		fmt.Printf("PyTorch run %d: %8.0f images/s, single p50 %.1f us, p99 %.1f us\n", i+1, ips, p50*1e3, p99*1e3)
	}
	return r, nil
}

// lastJSON parses the last line of out that is a JSON object.
func lastJSON(out string) (map[string]any, error) {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if !strings.HasPrefix(l, "{") {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			return nil, err
		}
		return m, nil
	}
	return nil, fmt.Errorf("no JSON line")
}
