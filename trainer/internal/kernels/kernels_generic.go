//go:build !(cgo && amd64)

package kernels

// Without cgo on amd64, the kernels are their Go references.

// AdamWidth is how many values Adam computes at once: one, in Go.
const AdamWidth = 1

// Vector is whether the AVX-512 kernels run: never here.
const Vector = false

// elemWidth is the width of the element-wise kernels' vector form: none
// here, Go's loops.
var elemWidth = 0

// elemWidths are the element-wise forms: Go's loops alone here.
func elemWidths() []int { return []int{0} }

// DirectConv is whether the direct 3×3 convolution kernels run: never
// here.
const DirectConv = false

// Adam applies step s to p with the gradient g and the moments m and v.
func Adam(p, g, m, v []float32, s AdamStep) { AdamGo(p, g, m, v, s) }

// LinearWeightStep is the fused kernel of cgo builds on amd64; here there is
// none, and it reports false.
func LinearWeightStep(x, dz []float32, n, in, out, r0, r1 int, p, m, v []float32, s AdamStep) bool {
	return false
}

// LinearWeightStepRef is the fused kernel's reference; with no kernel, it
// is never called.
func LinearWeightStepRef(x, dz []float32, n, in, out, r0, r1 int, p, m, v []float32, s AdamStep) {
	panic("kernels: no fused kernel in this build")
}

// BiasReLU sets v[j] = max(v[j]+b[j], 0), with NaN kept and -0 made +0.
func BiasReLU(v, b []float32) { BiasReLUGo(v, b) }

// ReLUGrad sets dz[j] = dy[j] where y[j] > 0 or is NaN, else +0.
func ReLUGrad(dz, y, dy []float32) { ReLUGradGo(dz, y, dy) }

// AddRows adds rows rows of v, len(s) values each and ld apart, to s.
func AddRows(s, v []float32, rows, ld int) { AddRowsGo(s, v, rows, ld) }

// BiasSigmoid sets v[i] = Sigmoid32(v[i] + b).
func BiasSigmoid(v []float32, b float32) { BiasSigmoidGo(v, b) }

// sigmoidWidths are the sigmoid's forms: Go's loop alone here.
func sigmoidWidths() []int { return []int{0} }

// biasSigmoidWidth is BiasSigmoid: Go's loop, whatever the width.
func biasSigmoidWidth(width int, v []float32, b float32) { BiasSigmoidGo(v, b) }

// BiasReLUScalar sets v[j] = max(v[j]+b, 0), with NaN kept and -0 made +0.
func BiasReLUScalar(v []float32, b float32) { BiasReLUScalarGo(v, b) }

// Col2Im1 is Col2Im1Go.
func Col2Im1(dx, cols []float32, c, k, h, w, oh, ow, pad int) {
	Col2Im1Go(dx, cols, c, k, h, w, oh, ow, pad)
}

// MaxPool2x2Grad is MaxPool2x2GradGo.
func MaxPool2x2Grad(grad []float32, planes, w, hw, oh, ow int, dy []float32, where []uint8, relu bool) {
	MaxPool2x2GradGo(grad, planes, w, hw, oh, ow, dy, where, relu)
}

// MaxPool2x2 is MaxPool2x2Go.
func MaxPool2x2(x []float32, planes, w, hw, oh, ow int, y []float32, where []uint8) {
	MaxPool2x2Go(x, planes, w, hw, oh, ow, y, where)
}

// Describe says which kernels run: the Go references, in this build.
func Describe() string { return "Go (a build without cgo on amd64)" }

// ChannelSums adds to d[ch] the sum of each channel of block (ChannelSumsGo).
func ChannelSums(d, block []float32, inner int) { ChannelSumsGo(d, block, inner) }

// Transpose is TransposeGo.
func Transpose(dst, src []float32, rows, cols int) { TransposeGo(dst, src, rows, cols) }

// Interleave2 is Interleave2Go on planes consecutive planes (dst's and
// src's 4·h·w values each), plane c with bias[c], followed, with relu, by
// BiasReLUScalarGo with bias 0.
func Interleave2(dst, src []float32, planes, h, w int, bias []float32, relu bool) {
	for p := range planes {
		o := p * 4 * h * w
		Interleave2Go(dst[o:], src[o:], h, w, bias[p])
		if relu {
			BiasReLUScalarGo(dst[o:o+4*h*w], 0)
		}
	}
}

// Deinterleave2 is Deinterleave2Go on planes consecutive planes (dz's,
// y's and dy's 4·h·w values each).
func Deinterleave2(dz, y, dy []float32, planes, h, w int, act Act) {
	for p := range planes {
		o := p * 4 * h * w
		Deinterleave2Go(dz[o:], y[o:], dy[o:], h, w, act)
	}
}

// Im2ColSame reports false, doing nothing: without the C kernel, the
// caller's own loop (which copies whole runs of a plane) is faster than
// Im2ColSameGo, a reading of the definition.
func Im2ColSame(dst, x []float32, c, h, w, k, pad, r0, r1 int) bool { return false }

// Conv3x3 reports false, doing nothing: without the C kernel, the
// convolutions run as im2col and a matrix product.
func Conv3x3(y, x, w []float32, n, cin, cout, h, wd int) bool { return false }

// Conv3x3ReLUPool reports false, doing nothing, as Conv3x3 does.
func Conv3x3ReLUPool(y, x, w, bias []float32, n, cin, cout, h, wd int, pooled []float32, where []uint8) bool {
	return false
}

// Conv3x3GradW reports false, doing nothing, as Conv3x3 does.
func Conv3x3GradW(dw, x, dzT []float32, n, cin, cout, h, wd, ci0, ci1 int, scratch []float32) bool {
	return false
}

// Conv3x3GradWFits is false: there is no direct convolution without cgo.
func Conv3x3GradWFits(cout int) bool { return false }

// Conv3x3GradWScratch is 0: Conv3x3GradW needs no scratch where it does
// nothing.
func Conv3x3GradWScratch(nci, cout, h, wd int) int { return 0 }

// Sgemm is the product kernel of cgo builds on amd64; here there is none,
// and it reports false.
func Sgemm(transB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) bool {
	return false
}

// SgemmRef is Sgemm's reference; with no kernel, it is never called.
func SgemmRef(transB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	panic("kernels: no product kernel in this build")
}

// Conv3x3PoolGrad reports false, doing nothing, as Conv3x3 does.
func Conv3x3PoolGrad(part, x, dy []float32, where []uint8, relu bool, s0, s1, cout, h, wd int, scratch []float32) bool {
	return false
}

// Conv3x3PoolGradFits is false: there is no fused kernel without cgo.
func Conv3x3PoolGradFits() bool { return false }

// Conv3x3PoolGradScratch is 0: Conv3x3PoolGrad needs no scratch where it
// does nothing.
func Conv3x3PoolGradScratch(cout, h, wd int) int { return 0 }

// Conv3x3PoolGradW reports false, doing nothing, as Conv3x3 does.
func Conv3x3PoolGradW(dw, db, x, dy []float32, where []uint8, n, cin, cout, h, wd, co0, co1 int, scratch []float32) bool {
	return false
}

// Conv3x3PoolGradWScratch is 0: Conv3x3PoolGradW needs no scratch where it
// does nothing.
func Conv3x3PoolGradWScratch(cin, h, wd, nco int) int { return 0 }

// Conv3x3PoolGradX reports false, doing nothing, as Conv3x3 does.
func Conv3x3PoolGradX(dx, w, dy []float32, where []uint8, s0, s1, cin, cout, h, wd int, scratch []float32) bool {
	return false
}

// Conv3x3PoolGradXScratch is 0: Conv3x3PoolGradX needs no scratch where it
// does nothing.
func Conv3x3PoolGradXScratch(cin, cout, h, wd int) int { return 0 }

// Conv3x3PoolGradSparseFits is false: there are no such kernels without
// cgo.
func Conv3x3PoolGradSparseFits(cin, h, wd int) bool { return false }

// MSESigmoidGrad is MSESigmoidGradGo.
func MSESigmoidGrad(dz, y, x []float32, k float32) bool { return MSESigmoidGradGo(dz, y, x, k) }
