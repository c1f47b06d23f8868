package trainer

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"strconv"
	"strings"
)

// MemoryMiB returns the resident set size of this process and its peak, in
// MiB, from /proc/self/status (0 where that is not available).
func MemoryMiB() (rss, peak float64) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		k, v, ok := strings.Cut(s.Text(), ":")
		if !ok {
			continue
		}
		kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
		switch k {
		case "VmRSS":
			rss = kb / 1024
		case "VmHWM":
			peak = kb / 1024
		}
	}
	return rss, peak
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
