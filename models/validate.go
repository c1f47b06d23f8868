package models

import (
	"errors"
	"fmt"
)

// Limits on an architecture, which Validate checks, as a declaration read
// from a file may be damaged or hostile. They are far above latent's models
// (the largest tensor of conv has 200,704 values) and keep every size that
// shape inference computes far from overflowing an int.
const (
	// MaxLayers is the most layers that the encoder or the decoder may have.
	MaxLayers = 256
	// MaxKernel bounds kernel sizes, strides and paddings.
	MaxKernel = 64
	// MaxValues bounds the size of every weight tensor, the per-sample size
	// of every activation and every single dimension.
	MaxValues = 1 << 28
	// MaxBottleneck is the largest code size, as New allows.
	MaxBottleneck = 4096
)

// checkBounds checks the bounds that Validate documents, running shape
// inference layer by layer so that the whole-part inference after it never
// divides by zero or overflows.
func (a Arch) checkBounds() error {
	if a.Kind == "" {
		return errors.New("no kind")
	}
	if a.Bottleneck < 1 || a.Bottleneck > MaxBottleneck {
		return fmt.Errorf("bottleneck %d out of range: want 1 to %d", a.Bottleneck, MaxBottleneck)
	}
	if len(a.Input) != 3 {
		return fmt.Errorf("input shape %v: want [C H W]", a.Input)
	}
	if err := checkShape("input", a.Input); err != nil {
		return err
	}
	code, err := checkPart(Encoder, a.Input, a.Encoder)
	if err != nil {
		return err
	}
	if a.Variational {
		// The heads: two Linear layers from the flat encoder output.
		if len(code) != 1 || code[0]*a.Bottleneck > MaxValues {
			return fmt.Errorf("variational encoder gives %v, want a flat output of at most %d values for the heads", code, MaxValues/a.Bottleneck)
		}
		code = []int{a.Bottleneck}
	}
	if len(code) != 1 || code[0] != a.Bottleneck {
		return fmt.Errorf("encoder gives %v, want [%d]", code, a.Bottleneck)
	}
	if _, err = checkPart(Decoder, code, a.Decoder); err != nil {
		return err
	}
	return a.checkAttrs()
}

// checkAttrs checks the layers kept outside the Sequentials (Layer.Attr):
// parameter-free, before every indexed layer of the encoder or after every
// indexed layer of the decoder, and named like a Python attribute, each
// name once.
func (a Arch) checkAttrs() error {
	seen := map[string]bool{}
	for _, part := range []string{Encoder, Decoder} {
		layers := a.Layers(part)
		for i, l := range layers {
			if l.Attr == "" {
				continue
			}
			if l.HasParams() {
				return fmt.Errorf("%s.%d: %s has parameters, so it cannot be kept outside the Sequential as %q", part, i, l.Op, l.Attr)
			}
			if !isIdentifier(l.Attr) || l.Attr == Encoder || l.Attr == Decoder || seen[l.Attr] {
				return fmt.Errorf("%s.%d: attribute name %q: want a new Python identifier other than encoder and decoder", part, i, l.Attr)
			}
			seen[l.Attr] = true
			// The encoder's attributes come first, the decoder's last:
			// no Sequential layer on the outer side.
			outer, where := layers[:i], "first"
			if part == Decoder {
				outer, where = layers[i+1:], "last"
			}
			for _, o := range outer {
				if o.Attr == "" {
					return fmt.Errorf("%s.%d: attribute %q among Sequential layers; the %s's attributes come %s", part, i, l.Attr, part, where)
				}
			}
		}
	}
	return nil
}

// isIdentifier reports whether s is a short ASCII identifier.
func isIdentifier(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i, c := range s {
		letter := c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if !letter && (i == 0 || c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// checkPart checks the layers of one part for an input of shape in and
// returns the part's output shape.
func checkPart(part string, in []int, layers []Layer) ([]int, error) {
	if len(layers) < 1 || len(layers) > MaxLayers {
		return nil, fmt.Errorf("%s of %d layers: want 1 to %d", part, len(layers), MaxLayers)
	}
	s := in
	for i, l := range layers {
		if err := checkLayer(l); err != nil {
			return nil, fmt.Errorf("%s.%d: %w", part, i, err)
		}
		if l.HasParams() {
			if err := checkShape("weight", l.WeightShape()); err != nil {
				return nil, fmt.Errorf("%s.%d: %w", part, i, err)
			}
		}
		out, err := l.OutShape(s)
		if err != nil {
			return nil, fmt.Errorf("%s.%d: %w", part, i, err)
		}
		if (l.Op == Conv2d || l.Op == MaxPool2d) && min(s[1], s[2])+2*l.Pad < l.Kernel {
			return nil, fmt.Errorf("%s.%d: %s kernel %d larger than its padded input %v", part, i, l.Op, l.Kernel, s)
		}
		if err := checkShape("output", out); err != nil {
			return nil, fmt.Errorf("%s.%d: %s of input %v: %w", part, i, l.Op, s, err)
		}
		s = out
	}
	return s, nil
}

// checkLayer checks the fields of one layer that its op uses.
func checkLayer(l Layer) error {
	type field struct {
		name      string
		v, lo, hi int
	}
	var fields []field
	switch l.Op {
	case Linear:
		fields = []field{{"in", l.In, 1, MaxValues}, {"out", l.Out, 1, MaxValues}}
	case Conv2d, ConvTranspose2d:
		fields = []field{{"in", l.In, 1, MaxValues}, {"out", l.Out, 1, MaxValues},
			{"kernel", l.Kernel, 1, MaxKernel}, {"stride", l.Stride, 1, MaxKernel}, {"pad", l.Pad, 0, MaxKernel}}
	case MaxPool2d:
		fields = []field{{"kernel", l.Kernel, 1, MaxKernel}, {"stride", l.Stride, 1, MaxKernel}, {"pad", l.Pad, 0, 0}}
	case Unflatten:
		if len(l.Shape) < 1 || len(l.Shape) > 3 {
			return fmt.Errorf("Unflatten to %v: want 1 to 3 dimensions", l.Shape)
		}
		return checkShape("Unflatten shape", l.Shape)
	case ReLU, Sigmoid, Flatten:
	default:
		return fmt.Errorf("unknown layer op %q", l.Op)
	}
	for _, f := range fields {
		if f.v < f.lo || f.v > f.hi {
			return fmt.Errorf("%s %s %d out of range: want %d to %d", l.Op, f.name, f.v, f.lo, f.hi)
		}
	}
	return nil
}

// checkShape checks that every dimension of shape is 1 to MaxValues and that
// their product is at most MaxValues.
func checkShape(what string, shape []int) error {
	n := 1
	for _, d := range shape {
		if d < 1 || d > MaxValues {
			return fmt.Errorf("%s shape %v: want dimensions of 1 to %d", what, shape, MaxValues)
		}
		n *= d // at most MaxValues·MaxValues: no overflow
		if n > MaxValues {
			return fmt.Errorf("%s shape %v: more than %d values", what, shape, MaxValues)
		}
	}
	return nil
}
