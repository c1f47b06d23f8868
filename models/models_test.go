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
			"encoder.0.weight encoder.0.bias encoder.2.weight encoder.2.bias encoder.4.weight encoder.4.bias " +
				"decoder.0.weight decoder.0.bias decoder.2.weight decoder.2.bias decoder.4.weight decoder.4.bias"},
		{"conv", 16*9 + 16 + 32*16*9 + 32 + 1568*128 + 128 + 128*10 + 10 + 10*128 + 128 + 128*1568 + 1568 + 32*16*4 + 16 + 16*4 + 1,
			"encoder.0.weight encoder.0.bias encoder.3.weight encoder.3.bias encoder.7.weight encoder.7.bias " +
				"encoder.9.weight encoder.9.bias decoder.0.weight decoder.0.bias decoder.2.weight decoder.2.bias " +
				"decoder.5.weight decoder.5.bias decoder.7.weight decoder.7.bias"},
		// The VAEs: the Linear to the bottleneck becomes two heads.
		{"classic-vae", 784*512 + 512 + 512*512 + 512 + 2*(512*10+10) + 10*512 + 512 + 512*512 + 512 + 512*784 + 784,
			"encoder.0.weight encoder.0.bias encoder.2.weight encoder.2.bias " +
				"fc_mu.weight fc_mu.bias fc_logvar.weight fc_logvar.bias " +
				"decoder.0.weight decoder.0.bias decoder.2.weight decoder.2.bias decoder.4.weight decoder.4.bias"},
		{"conv-vae", 16*9 + 16 + 32*16*9 + 32 + 1568*128 + 128 + 2*(128*10+10) + 10*128 + 128 + 128*1568 + 1568 + 32*16*4 + 16 + 16*4 + 1,
			"encoder.0.weight encoder.0.bias encoder.3.weight encoder.3.bias encoder.7.weight encoder.7.bias " +
				"fc_mu.weight fc_mu.bias fc_logvar.weight fc_logvar.bias " +
				"decoder.0.weight decoder.0.bias decoder.2.weight decoder.2.bias " +
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
		code := enc[len(enc)-1]
		if a.Variational {
			if h := a.Heads(); len(h) != 2 || h[0].In != code[0] || len(code) != 1 {
				t.Errorf("%s: heads %v after an encoder output %v", tc.kind, h, code)
			}
			code = []int{a.Heads()[0].Out}
		}
		if got := fmt.Sprint(code); got != "[10]" {
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
		{"mlp", 10, `unknown model "mlp": want one of classic, classic-vae, conv, conv-vae`},
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

// TestModulesFollowTheNotebook checks the module names of both models
// against the notebook's classes: the classic model's flatten and unflatten
// are attributes of their own, outside the Sequentials.
func TestModulesFollowTheNotebook(t *testing.T) {
	cases := []struct{ kind, encoder, decoder string }{
		{"classic", "flatten encoder.0 encoder.1 encoder.2 encoder.3 encoder.4",
			"decoder.0 decoder.1 decoder.2 decoder.3 decoder.4 decoder.5 unflatten"},
		{"conv", "encoder.0 encoder.1 encoder.2 encoder.3 encoder.4 encoder.5 encoder.6 encoder.7 encoder.8 encoder.9",
			"decoder.0 decoder.1 decoder.2 decoder.3 decoder.4 decoder.5 decoder.6 decoder.7 decoder.8"},
	}
	for _, tc := range cases {
		a, err := New(tc.kind, 10)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(a.Modules(Encoder), " "); got != tc.encoder {
			t.Errorf("%s encoder modules %s, want %s", tc.kind, got, tc.encoder)
		}
		if got := strings.Join(a.Modules(Decoder), " "); got != tc.decoder {
			t.Errorf("%s decoder modules %s, want %s", tc.kind, got, tc.decoder)
		}
	}
}

// TestParseJSONUpgradesIndexedLayout checks that a declaration in the
// layout of older files (every layer inside the Sequentials) comes back as
// New declares the model today, and that Indexed gives the older names.
func TestParseJSONUpgradesIndexedLayout(t *testing.T) {
	now, _ := New("classic", 7)
	old := now.Indexed()
	if old.Equal(now) {
		t.Fatal("Indexed changed nothing on the classic model")
	}
	if got := old.Params()[0].Name; got != "encoder.1.weight" {
		t.Errorf("older layout's first tensor %s, want encoder.1.weight", got)
	}
	back, err := ParseJSON(old.JSON())
	if err != nil {
		t.Fatal(err)
	}
	if !back.Equal(now) {
		t.Errorf("ParseJSON of the older layout gave %s, want %s", back.JSON(), now.JSON())
	}
	conv, _ := New("conv", 10)
	if !conv.Indexed().Equal(conv) {
		t.Error("Indexed changed the conv model, which has no attributes")
	}
}

func TestAttrsValidated(t *testing.T) {
	cases := []struct {
		name string
		edit func(a *Arch)
		want string
	}{
		{"on a Linear", func(a *Arch) { a.Encoder[1].Attr = "fc" }, "has parameters"},
		{"not first in the encoder", func(a *Arch) { a.Encoder[2].Attr = "relu" }, "among Sequential layers"},
		{"not last in the decoder", func(a *Arch) { a.Decoder[3].Attr = "act" }, "among Sequential layers"},
		{"not an identifier", func(a *Arch) { a.Encoder[0].Attr = "flat.ten" }, "attribute name"},
		{"twice", func(a *Arch) { a.Decoder[6].Attr = "flatten" }, "attribute name"},
		{"named encoder", func(a *Arch) { a.Encoder[0].Attr = "encoder" }, "attribute name"},
	}
	for _, tc := range cases {
		a, _ := New("classic", 10)
		a.Encoder, a.Decoder = slices.Clone(a.Encoder), slices.Clone(a.Decoder)
		tc.edit(&a)
		if err := a.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one that says %q", tc.name, err, tc.want)
		}
	}
}
