package models

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestNotebookShapes(t *testing.T) {
	cases := []struct {
		kind   string
		params int
		names  string
	}{
		{"classic", 784*512 + 512 + 512*512 + 512 + 512*10 + 10 + 10*512 + 512 + 512*512 + 512 + 512*784 + 784,
			"encoder.1.weight encoder.1.bias encoder.3.weight encoder.3.bias encoder.5.weight encoder.5.bias " +
				"decoder.0.weight decoder.0.bias decoder.2.weight decoder.2.bias decoder.4.weight decoder.4.bias"},
		{"conv", 16*9 + 16 + 32*16*9 + 32 + 1568*128 + 128 + 128*10 + 10 + 10*128 + 128 + 128*1568 + 1568 + 32*16*4 + 16 + 16*4 + 1,
			"encoder.0.weight encoder.0.bias encoder.3.weight encoder.3.bias encoder.7.weight encoder.7.bias " +
				"encoder.9.weight encoder.9.bias decoder.0.weight decoder.0.bias decoder.2.weight decoder.2.bias " +
				"decoder.5.weight decoder.5.bias decoder.7.weight decoder.7.bias"},
	}
	for _, tc := range cases {
		a, err := New(tc.kind, 10)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, p := range a.Params() {
			names = append(names, p.Name)
		}
		if got := strings.Join(names, " "); got != tc.names {
			t.Errorf("%s: params %s, want %s", tc.kind, got, tc.names)
		}
		if a.NumParams() != tc.params {
			t.Errorf("%s: %d parameters, want %d", tc.kind, a.NumParams(), tc.params)
		}
		enc, dec := a.Shapes("encoder"), a.Shapes("decoder")
		if got := fmt.Sprint(enc[len(enc)-1]); got != "[10]" {
			t.Errorf("%s: code shape %s", tc.kind, got)
		}
		if got := fmt.Sprint(dec[len(dec)-1]); got != "[1 28 28]" {
			t.Errorf("%s: output shape %s", tc.kind, got)
		}
	}
	conv, _ := New("conv", 10)
	if got := fmt.Sprint(conv.Shapes("encoder")[7]); got != "[1568]" {
		t.Errorf("conv: flattened features %s, want [1568]", got)
	}
}

func TestNewErrors(t *testing.T) {
	cases := []struct {
		kind       string
		bottleneck int
		want       string
	}{
		{"mlp", 10, `unknown model "mlp": want one of classic, conv`},
		{"classic", 0, "bottleneck 0 out of range"},
		{"conv", 100000, "out of range"},
	}
	for _, tc := range cases {
		if _, err := New(tc.kind, tc.bottleneck); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%q, %d): %v, want %q", tc.kind, tc.bottleneck, err, tc.want)
		}
	}
}

func TestJSONRoundTrip(t *testing.T) {
	for _, k := range Kinds() {
		a, _ := New(k, 7)
		b, err := ParseJSON(a.JSON())
		if err != nil || !a.Equal(b) {
			t.Errorf("%s: %v", k, err)
		}
	}
	if _, err := ParseJSON(`{"kind":"x","bottleneck":3,"input":[1,28,28],"encoder":[{"op":"Linear","in":5,"out":3}]}`); err == nil {
		t.Error("accepted an encoder whose input does not fit")
	}
}

func TestConvTransposeFanIn(t *testing.T) {
	// PyTorch reads the fan-in of a ConvTranspose2d weight [in, out, k, k]
	// from dimension 1: out·k·k.
	l := Layer{Op: ConvTranspose2d, In: 32, Out: 16, Kernel: 2, Stride: 2}
	if l.FanIn() != 64 {
		t.Errorf("fan-in %d, want 64", l.FanIn())
	}
}

// TestMultiplyAdds checks the per-sample multiply-adds against the
// notebook's layer sizes worked out by hand.
func TestMultiplyAdds(t *testing.T) {
	tests := []struct {
		kind string
		want []int
	}{
		{"classic", []int{784 * 512, 512 * 512, 512 * 10, 10 * 512, 512 * 512, 512 * 784}},
		{"conv", []int{
			1 * 16 * 9 * 28 * 28,  // conv 1->16 at 28x28
			16 * 32 * 9 * 14 * 14, // conv 16->32 at 14x14
			1568 * 128, 128 * 10, 10 * 128, 128 * 1568,
			32 * 16 * 4 * 7 * 7,   // convT 32->16 from 7x7
			16 * 1 * 4 * 14 * 14}, // convT 16->1 from 14x14
		},
	}
	for _, tt := range tests {
		arch, err := New(tt.kind, DefaultBottleneck)
		if err != nil {
			t.Fatal(err)
		}
		if got := arch.MultiplyAdds(); !slices.Equal(got, tt.want) {
			t.Errorf("%s: MultiplyAdds() = %v, want %v", tt.kind, got, tt.want)
		}
	}
}
