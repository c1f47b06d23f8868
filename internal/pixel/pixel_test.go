package pixel

import (
	"math"
	"testing"
)

// TestRoundTrip checks every byte: ToFloat32 gives b/255 in float32, and
// ToUint8 gives the byte back; and ToUint8 clamps and rounds the rest.
func TestRoundTrip(t *testing.T) {
	src := make([]uint8, 256)
	for i := range src {
		src[i] = uint8(i)
	}
	f := ToFloat32(make([]float32, 256), src)
	for i, v := range f {
		if v != float32(i)/255 {
			t.Fatalf("byte %d is %v, want %v", i, v, float32(i)/255)
		}
	}
	back := ToUint8(make([]uint8, 256), f)
	for i, b := range back {
		if int(b) != i {
			t.Fatalf("byte %d came back as %d", i, b)
		}
	}
	for _, tc := range []struct {
		v    float32
		want uint8
	}{{-1, 0}, {float32(math.NaN()), 0}, {2, 255}, {0.5 / 255, 1}, {0.49 / 255, 0}, {1, 255}} {
		if got := ToUint8(make([]uint8, 1), []float32{tc.v})[0]; got != tc.want {
			t.Errorf("ToUint8(%v) = %d, want %d", tc.v, got, tc.want)
		}
	}
}
