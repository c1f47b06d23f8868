// Package pixel converts pixel bytes to the float32 values the models take
// and back: one conversion for the data sets and the trainer alike.
package pixel

// scale maps a pixel byte to its value, b/255 in float32, as torchvision's
// ToTensor computes it.
var scale = func() (t [256]float32) {
	for b := range t {
		t[b] = float32(b) / 255
	}
	return t
}()

// ToFloat32 writes each pixel byte of src divided by 255 into dst, which
// must be at least as long, and returns dst[:len(src)].
func ToFloat32(dst []float32, src []uint8) []float32 {
	dst = dst[:len(src)]
	for i, b := range src {
		dst[i] = scale[b]
	}
	return dst
}

// ToUint8 writes each value of src, in [0, 1], as the nearest pixel byte
// (v×255 rounded, values outside [0, 1] clamped, NaN as 0) into dst, which
// must be at least as long, and returns dst[:len(src)]. For the values
// ToFloat32 gives, it gives back the bytes.
func ToUint8(dst []uint8, src []float32) []uint8 {
	dst = dst[:len(src)]
	for i, v := range src {
		switch {
		case v >= 1:
			dst[i] = 255
		case v > 0:
			dst[i] = uint8(v*255 + 0.5)
		default:
			dst[i] = 0
		}
	}
	return dst
}
