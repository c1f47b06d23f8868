package models

import (
	"strings"
	"testing"
)

// tinyConv is a small architecture with every layer kind.
func tinyConv() Arch {
	return Arch{Kind: "tinyconv", Bottleneck: 2, Input: []int{1, 4, 4},
		Encoder: []Layer{
			{Op: Conv2d, In: 1, Out: 2, Kernel: 3, Stride: 1, Pad: 1}, {Op: ReLU},
			{Op: MaxPool2d, Kernel: 2, Stride: 2}, {Op: Flatten}, {Op: Linear, In: 8, Out: 2}},
		Decoder: []Layer{
			{Op: Linear, In: 2, Out: 8}, {Op: Unflatten, Shape: []int{2, 2, 2}},
			{Op: ConvTranspose2d, In: 2, Out: 1, Kernel: 2, Stride: 2}, {Op: Sigmoid}}}
}

// TestValidate checks that ParseJSON (through Validate) accepts the
// notebook's models and refuses unsound declarations with a clear error.
func TestValidate(t *testing.T) {
	for _, kind := range Kinds() {
		for _, b := range []int{1, 10, MaxBottleneck} {
			want, err := New(kind, b)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseJSON(want.JSON())
			if err != nil || !got.Equal(want) {
				t.Errorf("%s %d: %v", kind, b, err)
			}
		}
	}
	for _, tc := range []struct {
		name   string
		change func(a *Arch)
		want   string
	}{
		// ParseJSON divides by zero on this one.
		{"stride 0", func(a *Arch) { a.Encoder[2].Stride = 0 }, "MaxPool2d stride 0 out of range"},
		{"conv stride 0", func(a *Arch) { a.Encoder[0].Stride = 0 }, "Conv2d stride 0 out of range"},
		// and accepts this one.
		{"bottleneck 0", func(a *Arch) { a.Encoder[4].Out, a.Decoder[0].In, a.Bottleneck = 0, 0, 0 }, "bottleneck 0 out of range"},
		{"no kind", func(a *Arch) { a.Kind = "" }, "no kind"},
		{"input of 2 dimensions", func(a *Arch) { a.Input = []int{4, 4} }, "want [C H W]"},
		{"negative channels", func(a *Arch) { a.Encoder[0].Out = -2 }, "Conv2d out -2 out of range"},
		{"huge kernel", func(a *Arch) { a.Encoder[0].Kernel = 1 << 40 }, "kernel 1099511627776 out of range"},
		{"kernel larger than the input", func(a *Arch) { a.Encoder[2].Kernel, a.Encoder[2].Stride = 5, 5 }, "larger than its padded input"},
		{"max pool with padding", func(a *Arch) { a.Encoder[2].Pad = 1 }, "MaxPool2d pad 1 out of range"},
		{"unknown op", func(a *Arch) { a.Decoder[3].Op = "Tanh" }, `unknown layer op "Tanh"`},
		{"no decoder", func(a *Arch) { a.Decoder = nil }, "decoder of 0 layers"},
		{"unflatten to 4 dimensions", func(a *Arch) { a.Decoder[1].Shape = []int{1, 2, 2, 2} }, "1 to 3 dimensions"},
		{"overflowing unflatten", func(a *Arch) { a.Decoder[1].Shape = []int{1 << 20, 1 << 20, 1} }, "more than"},
		{"wrong output", func(a *Arch) { a.Input = []int{1, 8, 8}; a.Encoder[4].In = 32 }, "decoder gives"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := tinyConv()
			tc.change(&a)
			if _, err := ParseJSON(a.JSON()); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got error %v, want one containing %q", err, tc.want)
			}
		})
	}
	if _, err := ParseJSON("{"); err == nil || !strings.HasPrefix(err.Error(), "architecture: ") {
		t.Errorf("bad JSON: %v", err)
	}
}

// FuzzParseJSON checks that ParseJSON never panics and that what it accepts
// is within its documented bounds and survives a JSON round trip.
func FuzzParseJSON(f *testing.F) {
	for _, kind := range Kinds() {
		a, _ := New(kind, 10)
		f.Add(a.JSON())
	}
	f.Add(tinyConv().JSON())
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseJSON(s)
		if err != nil {
			return
		}
		if err := a.Validate(); err != nil {
			t.Fatalf("accepted an invalid architecture: %v", err)
		}
		if a.Kind == "" || a.Bottleneck < 1 || a.Bottleneck > MaxBottleneck || len(a.Input) != 3 {
			t.Fatalf("accepted kind %q, bottleneck %d, input %v", a.Kind, a.Bottleneck, a.Input)
		}
		for _, p := range a.Params() {
			if p.Size() < 1 || p.Size() > MaxValues {
				t.Fatalf("accepted tensor %s of shape %v", p.Name, p.Shape)
			}
		}
		for _, part := range []string{"encoder", "decoder"} {
			for _, s := range a.Shapes(part) {
				n := 1
				for _, d := range s {
					if d < 1 {
						t.Fatalf("accepted an activation of shape %v", s)
					}
					n *= d
				}
				if n > MaxValues {
					t.Fatalf("accepted an activation of shape %v", s)
				}
			}
		}
		back, err := ParseJSON(a.JSON())
		if err != nil || !back.Equal(a) {
			t.Fatalf("round trip: %v", err)
		}
	})
}
