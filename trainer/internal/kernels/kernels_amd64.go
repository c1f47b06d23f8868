//go:build cgo && amd64

package kernels

// The kernels in C, for CPUs with AVX-512 (16 values at a time) or AVX2
// (8 at a time: Adam, the sigmoid, the element-wise loops, and with FMA
// Conv3x3, Conv3x3ReLUPool, Conv3x3GradW and the Conv3x3PoolGrad ones),
// chosen at start from the CPU's features. An AVX2 form sums and rounds as
// its AVX-512 form does, each value in the same order, so the two give the
// same bits. Every kernel but LinearWeightStep, Conv3x3, Conv3x3GradW,
// the Conv3x3PoolGrad ones and Sgemm computes its Go reference's
// arithmetic in the same order, rounded the same way and without fused
// multiply-adds (the pragma), so it gives the same bits; those give the
// bits of their scalar references in C below (…Ref).
//
// Adam: the per-value update of AdamGo, with its flush of subnormal
// moments to zero. LinearWeightStep: a Linear layer's weight gradient
// dW = xᵀ·dz a block at a time in registers, with Adam applied to the same
// values of the weight from them, so the gradient is never written out to
// memory and read back; each value is summed over the batch in order, one
// fused multiply-add a sample. BiasReLU, ReLUGrad, AddRows: the
// element-wise loops around a Linear layer's products, each exact (a
// select, or one addition a value in the Go loop's order). MaxPool2x2:
// 16 windows at a time, their values de-interleaved with permutes, Go's
// max (NaN first, +0 over -0) from compares and blends. Col2Im1: each
// column row added to its place, 16 values at a time, rows in order, so
// every sum keeps its order. BiasSigmoid:
// Sigmoid32's float64 arithmetic 8 values at a time, with the same table.
// Conv3x3: a direct 3×3 convolution of a batch of samples, an output row
// one or two registers, with the bits of Conv3x3Ref (its own order of the
// sums, not a BLAS's); Conv3x3ReLUPool adds the bias, the ReLU and the 2×2
// max-pooling while the rows are in registers, the bits of the separate
// kernels (in the AVX2 form, for 16 output channels or more, with the
// channels as the lanes and the pooling from the cache: the same sums).
// Conv3x3GradW: its weight gradient, the output channels the
// lanes of the registers of sums, each a sum over the samples in order of
// a sum over a sample's rows and columns in order, the bits of
// Conv3x3GradWRef. Conv3x3PoolGrad: the first layer's weight and bias
// gradients from its pooling's gradient, each sample's dz written only to
// the cache, the bits of Conv3x3PoolGradRef and ChannelSums.
// Conv3x3PoolGradW and Conv3x3PoolGradX: a later layer's weight, bias and
// input gradients from its pooling's gradient, the input channels the
// lanes, summing only the places that get a gradient, in the dense sums'
// order: the bits of Conv3x3GradWRef, ChannelSums and Conv3x3Ref on the
// dense dz (for finite inputs and weights).

/*
#cgo LDFLAGS: -lm
#pragma GCC optimize("fp-contract=off")
#include <float.h>
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
typedef struct {
	float step_size, inv_bc2_sqrt, b1, b2, eps, wd;
} latent_adam_hyper;

// latent_adam_scalar updates values [j, n) one at a time.
static void latent_adam_scalar(float *p, const float *g, float *m, float *v, long j, long n, latent_adam_hyper h) {
	for (; j < n; j++) {
		float gj = g[j];
		float mj = h.b1 * m[j] + (1 - h.b1) * gj;
		float vj = h.b2 * v[j] + (1 - h.b2) * gj * gj;
		if (mj < FLT_MIN && mj > -FLT_MIN) mj = 0;
		if (vj < FLT_MIN) vj = 0;
		m[j] = mj;
		v[j] = vj;
		float denom = __builtin_sqrtf(vj) * h.inv_bc2_sqrt + h.eps;
		p[j] = p[j] * (1 - h.wd) - h.step_size * mj / denom;
	}
}

// latent_adam512 holds Adam's scalars of one step in vector registers.
typedef struct {
	__m512 ss, ib, eps, b1, b2, c1, c2, tiny, keep;
} latent_adam512;

__attribute__((target("avx512f")))
static inline latent_adam512 latent_adam512_init(latent_adam_hyper h) {
	latent_adam512 c;
	c.ss = _mm512_set1_ps(h.step_size);
	c.ib = _mm512_set1_ps(h.inv_bc2_sqrt);
	c.eps = _mm512_set1_ps(h.eps);
	c.b1 = _mm512_set1_ps(h.b1);
	c.b2 = _mm512_set1_ps(h.b2);
	c.c1 = _mm512_set1_ps(1 - h.b1);
	c.c2 = _mm512_set1_ps(1 - h.b2);
	c.tiny = _mm512_set1_ps(FLT_MIN);
	c.keep = _mm512_set1_ps(1 - h.wd);
	return c;
}

// latent_adam512_step updates the values of p, m and v in the lanes of k
// (up to 16 from the pointers) with the gradients gj.
__attribute__((target("avx512f")))
static inline void latent_adam512_step(const latent_adam512 *c, float *p, float *m, float *v, __m512 gj, __mmask16 k) {
	__m512 mj = _mm512_add_ps(_mm512_mul_ps(c->b1, _mm512_maskz_loadu_ps(k, m)), _mm512_mul_ps(c->c1, gj));
	__m512 vj = _mm512_add_ps(_mm512_mul_ps(c->b2, _mm512_maskz_loadu_ps(k, v)), _mm512_mul_ps(_mm512_mul_ps(c->c2, gj), gj));
	// Zero where |m| < FLT_MIN or v < FLT_MIN (false for NaN).
	mj = _mm512_maskz_mov_ps(~_mm512_cmp_ps_mask(_mm512_abs_ps(mj), c->tiny, _CMP_LT_OQ), mj);
	vj = _mm512_maskz_mov_ps(~_mm512_cmp_ps_mask(vj, c->tiny, _CMP_LT_OQ), vj);
	_mm512_mask_storeu_ps(m, k, mj);
	_mm512_mask_storeu_ps(v, k, vj);
	__m512 denom = _mm512_add_ps(_mm512_mul_ps(_mm512_sqrt_ps(vj), c->ib), c->eps);
	__m512 pj = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, p), c->keep);
	_mm512_mask_storeu_ps(p, k, _mm512_sub_ps(pj, _mm512_div_ps(_mm512_mul_ps(c->ss, mj), denom)));
}

// latent_adam_avx512 updates the values 16 at a time and returns how many
// it updated.
__attribute__((target("avx512f")))
static long latent_adam_avx512(float *p, const float *g, float *m, float *v, long n, latent_adam_hyper h) {
	latent_adam512 c = latent_adam512_init(h);
	long j = 0;
	for (; j + 16 <= n; j += 16) {
		latent_adam512_step(&c, p + j, m + j, v + j, _mm512_loadu_ps(g + j), 0xffff);
	}
	return j;
}

// latent_linear_block computes a block of R rows (from i) and 64 columns
// (from j, the lanes of k) of a Linear layer's weight gradient
// dW = xᵀ·dz, x [n, in] and dz [n, out] row-major: each value is summed
// over the n samples in order, one fused multiply-add each (the sums of
// latent_linear_dw_adam_ref). Then it applies Adam to the same values of the weight
// p [in, out] and its moments, from the registers.
// With FULL, all 64 columns are in the block and its loads take no mask.
#define LATENT_LOAD(FULL, k, d) ((FULL) ? _mm512_loadu_ps(d) : _mm512_maskz_loadu_ps(k, d))
#define LATENT_LINEAR_BLOCK(NAME, R, FULL) \
__attribute__((target("avx512f"))) \
static inline void NAME(const float *x, const float *dz, long n, long in, long out, long i, long j, \
		const __mmask16 k[4], float *p, float *m, float *v, const latent_adam512 *c) { \
	__m512 acc[R][4]; \
	_Pragma("GCC unroll 4") for (int r = 0; r < R; r++) \
		_Pragma("GCC unroll 4") for (int q = 0; q < 4; q++) acc[r][q] = _mm512_setzero_ps(); \
	__mmask16 k0 = k[0], k1 = k[1], k2 = k[2], k3 = k[3]; \
	for (long b = 0; b < n; b++) { \
		const float *d = dz + b * out + j; \
		__m512 d0 = LATENT_LOAD(FULL, k0, d), d1 = LATENT_LOAD(FULL, k1, d + 16); \
		__m512 d2 = LATENT_LOAD(FULL, k2, d + 32), d3 = LATENT_LOAD(FULL, k3, d + 48); \
		_Pragma("GCC unroll 4") for (int r = 0; r < R; r++) { \
			__m512 xr = _mm512_set1_ps(x[b * in + i + r]); \
			acc[r][0] = _mm512_fmadd_ps(xr, d0, acc[r][0]); \
			acc[r][1] = _mm512_fmadd_ps(xr, d1, acc[r][1]); \
			acc[r][2] = _mm512_fmadd_ps(xr, d2, acc[r][2]); \
			acc[r][3] = _mm512_fmadd_ps(xr, d3, acc[r][3]); \
		} \
	} \
	_Pragma("GCC unroll 4") for (int r = 0; r < R; r++) { \
		long at = (i + r) * out + j; \
		_Pragma("GCC unroll 4") for (int q = 0; q < 4; q++) \
			if (k[q]) latent_adam512_step(c, p + at + 16 * q, m + at + 16 * q, v + at + 16 * q, acc[r][q], k[q]); \
	} \
}
LATENT_LINEAR_BLOCK(latent_linear_block4, 4, 0)
LATENT_LINEAR_BLOCK(latent_linear_block1, 1, 0)
LATENT_LINEAR_BLOCK(latent_linear_block4_full, 4, 1)
LATENT_LINEAR_BLOCK(latent_linear_block1_full, 1, 1)

// latent_linear_dw_adam512 computes rows [r0, r1) of dW = xᵀ·dz and applies
// Adam to the same rows of p, m and v, a block of 4 rows and 64 columns at
// a time, so that the gradient never leaves the registers. The blocks go
// along the rows, so that p, m and v are read in order.
__attribute__((target("avx512f")))
static void latent_linear_dw_adam512(const float *x, const float *dz, long n, long in, long out, long r0, long r1,
		float *p, float *m, float *v, latent_adam_hyper h) {
	latent_adam512 c = latent_adam512_init(h);
	for (long i = r0; i < r1; ) {
		long rows = r1 - i >= 4 ? 4 : 1;
		for (long j = 0; j < out; j += 64) {
			__mmask16 k[4];
			for (int q = 0; q < 4; q++) {
				long left = out - j - 16 * q;
				k[q] = left >= 16 ? 0xffff : left <= 0 ? 0 : (__mmask16)((1u << left) - 1);
			}
			int full = j + 64 <= out;
			if (rows == 4 && full) latent_linear_block4_full(x, dz, n, in, out, i, j, k, p, m, v, &c);
			else if (rows == 4) latent_linear_block4(x, dz, n, in, out, i, j, k, p, m, v, &c);
			else if (full) latent_linear_block1_full(x, dz, n, in, out, i, j, k, p, m, v, &c);
			else latent_linear_block1(x, dz, n, in, out, i, j, k, p, m, v, &c);
		}
		i += rows;
	}
}

// latent_linear_dw_adam_ref is latent_linear_dw_adam512's scalar
// reference: rows [r0, r1) of dW = xᵀ·dz, each value summed over the n
// samples in order from zero with one correctly rounded fused multiply-add
// (fmaf) a sample, then Adam's update one value at a time
// (latent_adam_scalar, whose bits the vector updates share). The kernel
// must give its bits on every CPU (TestLinearWeightStep).
static void latent_linear_dw_adam_ref(const float *x, const float *dz, long n, long in, long out, long r0, long r1,
		float *p, float *m, float *v, latent_adam_hyper h) {
	for (long i = r0; i < r1; i++) {
		for (long j = 0; j < out; j++) {
			float g = 0;
			for (long b = 0; b < n; b++) g = fmaf(x[b * in + i], dz[b * out + j], g);
			latent_adam_scalar(p + i * out + j, &g, m + i * out + j, v + i * out + j, 0, 1, h);
		}
	}
}

// latent_mask8 is the AVX2 mask of the first min(left, 8) lanes, none
// where left <= 0.
__attribute__((target("avx2")))
static inline __m256i latent_mask8(long left) {
	int l = left <= 0 ? 0 : left >= 8 ? 8 : (int)left;
	return _mm256_cmpgt_epi32(_mm256_set1_epi32(l), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// latent_store8 stores v at d, in the lanes of k unless full; k is a
// latent_mask8, its lanes a prefix. A masked store is slow on some CPUs
// (AMD's), so the tails are stored in pieces of 4, 2 and 1 instead.
__attribute__((target("avx2"), always_inline))
static inline void latent_store8(float *d, __m256i k, __m256 v, int full) {
	int n = full ? 8 : __builtin_popcount(_mm256_movemask_ps(_mm256_castsi256_ps(k)));
	if (n == 8) {
		_mm256_storeu_ps(d, v);
		return;
	}
	__m128 q = _mm256_castps256_ps128(v);
	if (n >= 4) {
		_mm_storeu_ps(d, q);
		q = _mm256_extractf128_ps(v, 1);
		d += 4;
		n -= 4;
	}
	if (n >= 2) {
		_mm_storel_pi((__m64 *)d, q);
		q = _mm_movehl_ps(q, q);
		d += 2;
		n -= 2;
	}
	if (n) _mm_store_ss(d, q);
}

// latent_copy8 copies n values from s to d, which do not overlap, 8 at a
// time, the tail in pieces (latent_store8).
__attribute__((target("avx2"), always_inline))
static inline void latent_copy8(float *d, const float *s, long n) {
	long i = 0;
	for (; i + 8 <= n; i += 8) _mm256_storeu_ps(d + i, _mm256_loadu_ps(s + i));
	if (i < n) {
		const __m256i k = latent_mask8(n - i);
		latent_store8(d + i, k, _mm256_maskload_ps(s + i, k), 0);
	}
}

// latent_even8 is the even lanes of the 16 values a, b (a's first), and
// latent_odd8 the odd ones: a row of pairs split in two.
__attribute__((target("avx2"), always_inline))
static inline __m256 latent_even8(__m256 a, __m256 b) {
	return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0))), 0xd8));
}

__attribute__((target("avx2"), always_inline))
static inline __m256 latent_odd8(__m256 a, __m256 b) {
	return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1))), 0xd8));
}

// latent_interleave8 is latent_even8's and latent_odd8's way back: the 16
// values e0 o0 e1 o1 … of the 8 even values e and the 8 odd o, the first
// 8 in *lo and the next in *hi.
__attribute__((target("avx2"), always_inline))
static inline void latent_interleave8(__m256 e, __m256 o, __m256 *lo, __m256 *hi) {
	// unpacklo/hi interleave within each 128-bit half: [e0 o0 e1 o1 | e4
	// o4 e5 o5] and [e2 o2 e3 o3 | e6 o6 e7 o7].
	const __m256 l = _mm256_unpacklo_ps(e, o), h = _mm256_unpackhi_ps(e, o);
	*lo = _mm256_permute2f128_ps(l, h, 0x20);
	*hi = _mm256_permute2f128_ps(l, h, 0x31);
}

// latent_fma_width is the vector width of the kernels with an AVX-512
// and an AVX2 form (the direct 3×3 convolution, its weight gradient and
// the first layer's pooled gradient): 16 with AVX-512, 8 with AVX2 and
// FMA, 0 (none) without.
static int latent_fma_width(void) {
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx512f")) return 16;
	if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 8;
	return 0;
}

// latent_adam_avx2 updates the values 8 at a time and returns how many it
// updated.
__attribute__((target("avx2")))
static long latent_adam_avx2(float *p, const float *g, float *m, float *v, long n, latent_adam_hyper h) {
	__m256 ss = _mm256_set1_ps(h.step_size), ib = _mm256_set1_ps(h.inv_bc2_sqrt), eps = _mm256_set1_ps(h.eps);
	__m256 b1 = _mm256_set1_ps(h.b1), b2 = _mm256_set1_ps(h.b2), c1 = _mm256_set1_ps(1 - h.b1), c2 = _mm256_set1_ps(1 - h.b2);
	__m256 tiny = _mm256_set1_ps(FLT_MIN), absMask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
	__m256 keep = _mm256_set1_ps(1 - h.wd);
	long j = 0;
	for (; j + 8 <= n; j += 8) {
		__m256 gj = _mm256_loadu_ps(g + j);
		__m256 mj = _mm256_add_ps(_mm256_mul_ps(b1, _mm256_loadu_ps(m + j)), _mm256_mul_ps(c1, gj));
		__m256 vj = _mm256_add_ps(_mm256_mul_ps(b2, _mm256_loadu_ps(v + j)), _mm256_mul_ps(_mm256_mul_ps(c2, gj), gj));
		// Zero where |m| < FLT_MIN or v < FLT_MIN (false for NaN).
		mj = _mm256_andnot_ps(_mm256_cmp_ps(_mm256_and_ps(mj, absMask), tiny, _CMP_LT_OQ), mj);
		vj = _mm256_andnot_ps(_mm256_cmp_ps(vj, tiny, _CMP_LT_OQ), vj);
		_mm256_storeu_ps(m + j, mj);
		_mm256_storeu_ps(v + j, vj);
		__m256 denom = _mm256_add_ps(_mm256_mul_ps(_mm256_sqrt_ps(vj), ib), eps);
		_mm256_storeu_ps(p + j, _mm256_sub_ps(_mm256_mul_ps(_mm256_loadu_ps(p + j), keep), _mm256_div_ps(_mm256_mul_ps(ss, mj), denom)));
	}
	return j;
}

// latent_adam_width is 16 with AVX-512, 8 with AVX2, else 1.
static int latent_adam_width(void) {
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx512f")) return 16;
	if (__builtin_cpu_supports("avx2")) return 8;
	return 1;
}

static void latent_adam_update(int width, float *p, const float *g, float *m, float *v, long n, latent_adam_hyper h) {
	long j = 0;
	if (width == 16) j = latent_adam_avx512(p, g, m, v, n, h);
	else if (width == 8) j = latent_adam_avx2(p, g, m, v, n, h);
	latent_adam_scalar(p, g, m, v, j, n, h);
}

// latent_tail is the mask of the first min(left, 16) lanes, none where
// left <= 0.
static inline __mmask16 latent_tail(long left) {
	return left >= 16 ? 0xffff : left <= 0 ? 0 : (__mmask16)((1u << left) - 1);
}

// latent_bias_relu sets v[j] = v[j] + b[j] where that is > 0 or NaN, else +0.
__attribute__((target("avx512f")))
static void latent_bias_relu(float *v, const float *b, long n) {
	for (long j = 0; j < n; j += 16) {
		__mmask16 k = latent_tail(n - j);
		__m512 x = _mm512_add_ps(_mm512_maskz_loadu_ps(k, v + j), _mm512_maskz_loadu_ps(k, b + j));
		__mmask16 keep = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_NLE_UQ);
		_mm512_mask_storeu_ps(v + j, k, _mm512_maskz_mov_ps(keep, x));
	}
}

// latent_relu_grad sets dz[j] = dy[j] where y[j] > 0 or NaN, else +0.
__attribute__((target("avx512f")))
static void latent_relu_grad(float *dz, const float *y, const float *dy, long n) {
	for (long j = 0; j < n; j += 16) {
		__mmask16 k = latent_tail(n - j);
		__mmask16 keep = _mm512_cmp_ps_mask(_mm512_maskz_loadu_ps(k, y + j), _mm512_setzero_ps(), _CMP_NLE_UQ);
		_mm512_mask_storeu_ps(dz + j, k, _mm512_maskz_mov_ps(keep, _mm512_maskz_loadu_ps(k, dy + j)));
	}
}

// latent_add_rows adds rows rows of v (n values each, ld apart), in order,
// to s: s[j] += v[r][j].
__attribute__((target("avx512f")))
static void latent_add_rows(float *s, const float *v, long rows, long n, long ld) {
	for (long j = 0; j < n; j += 16) {
		__mmask16 k = latent_tail(n - j);
		__m512 acc = _mm512_maskz_loadu_ps(k, s + j);
		for (long r = 0; r < rows; r++) acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps(k, v + r * ld + j));
		_mm512_mask_storeu_ps(s + j, k, acc);
	}
}

// latent_bias_relu_scalar sets v[j] = v[j] + b where that is > 0 or NaN, else +0.
__attribute__((target("avx512f")))
static void latent_bias_relu_scalar(float *v, float b, long n) {
	const __m512 bv = _mm512_set1_ps(b);
	for (long j = 0; j < n; j += 16) {
		__mmask16 k = latent_tail(n - j);
		__m512 x = _mm512_add_ps(_mm512_maskz_loadu_ps(k, v + j), bv);
		__mmask16 keep = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_NLE_UQ);
		_mm512_mask_storeu_ps(v + j, k, _mm512_maskz_mov_ps(keep, x));
	}
}

// latent_lanes is the mask of lanes t of 16 with lo <= t < hi.
static inline __mmask16 latent_lanes(long lo, long hi) {
	if (lo < 0) lo = 0;
	if (hi > 16) hi = 16;
	if (hi <= lo) return 0;
	return (__mmask16)(((1u << hi) - 1) & ~((1u << lo) - 1));
}

// latent_col2im1 is Col2Im1Go, an output row of 16 values at a time: each
// value's terms, from the rows r = (ch, i, j) of cols in order, are added
// up in a register from +0 and stored once (adding the masked lanes' +0
// changes nothing: a sum from +0 is never -0), so every sum keeps the Go
// loop's order, and no store waits on the one before (the kernel added
// each row in place, and the overlapping rows of neighbouring j stalled
// it).
__attribute__((target("avx512f")))
static void latent_col2im1(float *dx, const float *cols, long c, long k, long h, long w, long oh, long ow, long pad) {
	const long ohw = oh * ow, hw = h * w;
	for (long ch = 0; ch < c; ch++) {
		const float *cc = cols + ch * k * k * ohw;
		for (long iy = 0; iy < h; iy++) {
			for (long x0 = 0; x0 < w; x0 += 16) {
				__mmask16 inw = latent_lanes(0, w - x0);
				__m512 acc = _mm512_setzero_ps();
				for (long i = 0; i < k; i++) {
					long oy = iy + pad - i;
					if (oy < 0 || oy >= oh) continue;
					for (long j = 0; j < k; j++) {
						long o0 = x0 + pad - j; // the column of lane 0 in the row of cols
						__mmask16 m = inw & latent_lanes(-o0, ow - o0);
						const float *src = cc + (i * k + j) * ohw + oy * ow;
						acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps(m, (const char *)src + 4 * o0));
					}
				}
				_mm512_mask_storeu_ps(dx + ch * hw + iy * w + x0, inw, acc);
			}
		}
	}
}

// latent_channel_sums is ChannelSumsGo: Sum4Go's four partial sums are the
// four lanes of an SSE register, and 8 channels are summed at once, so
// that 8 additions are in flight (Sum4Go's four chains wait on each
// other's latency).
static void latent_channel_sums(float *d, const float *block, long channels, long inner) {
	long ch = 0;
	for (; ch < channels; ch += 8) {
		long nc = channels - ch < 8 ? channels - ch : 8;
		__m128 acc[8];
		for (int q = 0; q < 8; q++) acc[q] = _mm_setzero_ps();
		const float *b = block + ch * inner;
		long i = 0;
		if (nc == 8) {
			for (; i + 4 <= inner; i += 4) {
				_Pragma("GCC unroll 8") for (int q = 0; q < 8; q++) acc[q] = _mm_add_ps(acc[q], _mm_loadu_ps(b + q * inner + i));
			}
		} else {
			for (; i + 4 <= inner; i += 4) {
				for (int q = 0; q < nc; q++) acc[q] = _mm_add_ps(acc[q], _mm_loadu_ps(b + q * inner + i));
			}
		}
		for (int q = 0; q < nc; q++) {
			float s[4];
			_mm_storeu_ps(s, acc[q]);
			for (long t = i; t < inner; t++) s[0] += b[q * inner + t];
			d[ch + q] += (s[0] + s[1]) + (s[2] + s[3]);
		}
	}
}

// latent_maxpool2x2_grad is MaxPool2x2GradGo on planes planes, 16 windows
// at a time: each window's four gradients, interleaved back into its rows.
__attribute__((target("avx512f,avx512bw,avx512vl")))
static void latent_maxpool2x2_grad(float *grad, long planes, long w, long hw, long oh, long ow, const float *dy, const uint8_t *where, int relu) {
	const __m512i lo = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
	const __m512i hi = _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
	const __m512i three = _mm512_set1_epi32(3), four = _mm512_set1_epi32(4);
	const long ohw = oh * ow;
	for (long p = 0; p < planes; p++) {
		float *g = grad + p * hw;
		// The windows write all four of their values: only a plane with
		// an odd row or column left over needs clearing first.
		if (2 * oh * w != hw || 2 * ow != w) {
			for (long i = 0; i < hw; i++) g[i] = 0;
		}
		for (long oy = 0; oy < oh; oy++) {
			float *r0 = g + 2 * oy * w, *r1 = r0 + w;
			for (long ox = 0; ox < ow; ox += 16) {
				long left = ow - ox;
				__mmask16 k = latent_tail(left);
				__mmask16 klo = latent_tail(2 * left), khi = left > 8 ? latent_tail(2 * left - 16) : 0;
				__m512 d = _mm512_maskz_loadu_ps(k, dy + p * ohw + oy * ow + ox);
				__m512i c = _mm512_maskz_cvtepu8_epi32(k, _mm_maskz_loadu_epi8(k, where + p * ohw + oy * ow + ox));
				if (relu) d = _mm512_maskz_mov_ps(_mm512_test_epi32_mask(c, four), d);
				__m512i pos = _mm512_and_si512(c, three);
				__m512 a = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(pos, _mm512_setzero_si512()), d);
				__m512 b = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(pos, _mm512_set1_epi32(1)), d);
				__m512 cc = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(pos, _mm512_set1_epi32(2)), d);
				__m512 e = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(pos, three), d);
				_mm512_mask_storeu_ps(r0 + 2 * ox, klo, _mm512_permutex2var_ps(a, lo, b));
				_mm512_mask_storeu_ps(r0 + 2 * ox + 16, khi, _mm512_permutex2var_ps(a, hi, b));
				_mm512_mask_storeu_ps(r1 + 2 * ox, klo, _mm512_permutex2var_ps(cc, lo, e));
				_mm512_mask_storeu_ps(r1 + 2 * ox + 16, khi, _mm512_permutex2var_ps(cc, hi, e));
			}
		}
	}
}

// latent_gomax is Go's max of two float32 vectors: NaN when either is NaN,
// +0 for +0 and -0, else the larger.
__attribute__((target("avx512f")))
static inline __m512 latent_gomax(__m512 x, __m512 y) {
	__m512 m = _mm512_max_ps(x, y);
	__mmask16 eq = _mm512_cmp_ps_mask(x, y, _CMP_EQ_OQ);
	m = _mm512_castsi512_ps(_mm512_mask_and_epi32(_mm512_castps_si512(m), eq, _mm512_castps_si512(x), _mm512_castps_si512(y)));
	return _mm512_mask_add_ps(m, _mm512_cmp_ps_mask(x, y, _CMP_UNORD_Q), x, y);
}

// latent_maxpool2x2 is MaxPool2x2Go on planes planes, 16 windows at a time.
__attribute__((target("avx512f")))
static void latent_maxpool2x2(const float *x, long planes, long w, long hw, long oh, long ow, float *y, uint8_t *where) {
	const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
	const __m512i odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
	const __m512 zero = _mm512_setzero_ps();
	const long ohw = oh * ow;
	for (long p = 0; p < planes; p++) {
		for (long oy = 0; oy < oh; oy++) {
			const float *r0 = x + p * hw + 2 * oy * w, *r1 = r0 + w;
			float *yr = y + p * ohw + oy * ow;
			for (long ox = 0; ox < ow; ox += 16) {
				long left = ow - ox;
				__mmask16 k = latent_tail(left);
				__mmask16 klo = latent_tail(2 * left), khi = left > 8 ? latent_tail(2 * left - 16) : 0;
				__m512 a0 = _mm512_maskz_loadu_ps(klo, r0 + 2 * ox), a1 = _mm512_maskz_loadu_ps(khi, r0 + 2 * ox + 16);
				__m512 c0 = _mm512_maskz_loadu_ps(klo, r1 + 2 * ox), c1 = _mm512_maskz_loadu_ps(khi, r1 + 2 * ox + 16);
				__m512 a = _mm512_permutex2var_ps(a0, even, a1), b = _mm512_permutex2var_ps(a0, odd, a1);
				__m512 c = _mm512_permutex2var_ps(c0, even, c1), e = _mm512_permutex2var_ps(c0, odd, c1);
				__m512 m0 = latent_gomax(a, b), m1 = latent_gomax(c, e), m = latent_gomax(m0, m1);
				_mm512_mask_storeu_ps(yr + ox, k, m);
				if (where == 0) continue;
				// The first maximum in row-major order: a, b, c, e.
				__m512i s0 = _mm512_maskz_set1_epi32(_mm512_cmp_ps_mask(b, a, _CMP_GT_OQ), 1);
				__m512i s1 = _mm512_add_epi32(_mm512_set1_epi32(2), _mm512_maskz_set1_epi32(_mm512_cmp_ps_mask(e, c, _CMP_GT_OQ), 1));
				__m512i code = _mm512_mask_mov_epi32(s0, _mm512_cmp_ps_mask(m1, m0, _CMP_GT_OQ), s1);
				code = _mm512_mask_add_epi32(code, _mm512_cmp_ps_mask(m, zero, _CMP_NLE_UQ), code, _mm512_set1_epi32(4));
				_mm512_mask_cvtepi32_storeu_epi8(where + p * ohw + oy * ow + ox, k, code);
			}
		}
	}
}

static int latent_masked_bytes(void) {
	return __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
}

// latent_sigmoid_avx512 sets v[j] = sigmoid32(v[j] + b) for the first
// multiple of 8 values of v and returns how many it set. table is
// exp2Table, 32 float64 values.
__attribute__((target("avx512f,avx512dq,avx512vl")))
static long latent_sigmoid_avx512(float *v, long n, float b, const double *table) {
	const __m512d nOverLn2 = _mm512_set1_pd(32.0 / 0.6931471805599453);
	const __m512d ln2OverN = _mm512_set1_pd(0.6931471805599453 / 32.0);
	const __m512d round = _mm512_set1_pd(0x1.8p52);
	const __m512d one = _mm512_set1_pd(1), half = _mm512_set1_pd(1.0 / 2), sixth = _mm512_set1_pd(1.0 / 6), c24 = _mm512_set1_pd(1.0 / 24);
	const __m512d limit = _mm512_set1_pd(110), negLimit = _mm512_set1_pd(-110);
	const __m512d sign = _mm512_castsi512_pd(_mm512_set1_epi64(INT64_MIN));
	const __m256 bias = _mm256_set1_ps(b);
	const __m256i expMask = _mm256_set1_epi32(0xff), mantMask = _mm256_set1_epi32(0x7fffff);
	long j = 0;
	for (; j + 8 <= n; j += 8) {
		__m256 x = _mm256_add_ps(_mm256_loadu_ps(v + j), bias);
		__m256i bits = _mm256_castps_si256(x);
		__m256i exp = _mm256_and_si256(_mm256_srli_epi32(bits, 23), expMask);
		__mmask8 isNaN = _mm256_cmpeq_epi32_mask(exp, expMask) & _mm256_test_epi32_mask(bits, mantMask);
		__mmask8 isTiny = _mm256_cmpeq_epi32_mask(exp, _mm256_setzero_si256());

		__m512d z = _mm512_xor_pd(_mm512_cvtps_pd(x), sign); // -x, exactly
		__m512d kf = _mm512_sub_pd(_mm512_add_pd(_mm512_mul_pd(z, nOverLn2), round), round);
		__m512d r = _mm512_sub_pd(z, _mm512_mul_pd(kf, ln2OverN));
		__m256i k = _mm512_cvttpd_epi32(kf);
		__m512d r2 = _mm512_mul_pd(r, r);
		__m512d p = _mm512_add_pd(_mm512_add_pd(one, r),
			_mm512_mul_pd(r2, _mm512_add_pd(_mm512_add_pd(half, _mm512_mul_pd(r, sixth)), _mm512_mul_pd(r2, c24))));
		__m512d t = _mm512_i32gather_pd(_mm256_and_si256(k, _mm256_set1_epi32(31)), table, 8);
		__m512i scaleBits = _mm512_slli_epi64(_mm512_add_epi64(_mm512_cvtepi32_epi64(_mm256_srai_epi32(k, 5)), _mm512_set1_epi64(1023)), 52);
		__m512d e = _mm512_mul_pd(_mm512_mul_pd(p, t), _mm512_castsi512_pd(scaleBits));
		__m512d y = _mm512_div_pd(one, _mm512_add_pd(one, e));
		y = _mm512_mask_blend_pd(_mm512_cmp_pd_mask(z, limit, _CMP_GT_OQ), y, _mm512_setzero_pd());
		y = _mm512_mask_blend_pd(_mm512_cmp_pd_mask(z, negLimit, _CMP_LT_OQ), y, one);
		y = _mm512_mask_blend_pd(isTiny, y, half);
		__m256 out = _mm512_cvtpd_ps(y);
		out = _mm256_mask_blend_ps(isNaN, out, x);
		_mm256_storeu_ps(v + j, out);
	}
	return j;
}

// latent_sigmoid4_avx2 is latent_sigmoid_avx512's float64 arithmetic on 4
// values, x widened to z = -x.
__attribute__((target("avx2"), always_inline))
static inline __m128 latent_sigmoid4_avx2(__m128 x, const double *table) {
	const __m256d nOverLn2 = _mm256_set1_pd(32.0 / 0.6931471805599453);
	const __m256d ln2OverN = _mm256_set1_pd(0.6931471805599453 / 32.0);
	const __m256d round = _mm256_set1_pd(0x1.8p52);
	const __m256d one = _mm256_set1_pd(1), half = _mm256_set1_pd(1.0 / 2), sixth = _mm256_set1_pd(1.0 / 6), c24 = _mm256_set1_pd(1.0 / 24);
	const __m256d sign = _mm256_castsi256_pd(_mm256_set1_epi64x(INT64_MIN));
	__m256d z = _mm256_xor_pd(_mm256_cvtps_pd(x), sign); // -x, exactly
	__m256d kf = _mm256_sub_pd(_mm256_add_pd(_mm256_mul_pd(z, nOverLn2), round), round);
	__m256d r = _mm256_sub_pd(z, _mm256_mul_pd(kf, ln2OverN));
	__m128i k = _mm256_cvttpd_epi32(kf);
	__m256d r2 = _mm256_mul_pd(r, r);
	__m256d p = _mm256_add_pd(_mm256_add_pd(one, r),
		_mm256_mul_pd(r2, _mm256_add_pd(_mm256_add_pd(half, _mm256_mul_pd(r, sixth)), _mm256_mul_pd(r2, c24))));
	__m256d t = _mm256_i32gather_pd(table, _mm_and_si128(k, _mm_set1_epi32(31)), 8);
	__m256i scaleBits = _mm256_slli_epi64(_mm256_add_epi64(_mm256_cvtepi32_epi64(_mm_srai_epi32(k, 5)), _mm256_set1_epi64x(1023)), 52);
	__m256d e = _mm256_mul_pd(_mm256_mul_pd(p, t), _mm256_castsi256_pd(scaleBits));
	__m256d y = _mm256_div_pd(one, _mm256_add_pd(one, e));
	y = _mm256_blendv_pd(y, _mm256_setzero_pd(), _mm256_cmp_pd(z, _mm256_set1_pd(110), _CMP_GT_OQ));
	y = _mm256_blendv_pd(y, one, _mm256_cmp_pd(z, _mm256_set1_pd(-110), _CMP_LT_OQ));
	return _mm256_cvtpd_ps(y);
}

// latent_sigmoid_avx2 is latent_sigmoid_avx512 with AVX2: the same
// arithmetic, 4 float64 values at a time, so the same bits.
__attribute__((target("avx2")))
static long latent_sigmoid_avx2(float *v, long n, float b, const double *table) {
	const __m256 bias = _mm256_set1_ps(b);
	const __m256i expMask = _mm256_set1_epi32(0xff), mantMask = _mm256_set1_epi32(0x7fffff), zero = _mm256_setzero_si256();
	long j = 0;
	for (; j + 8 <= n; j += 8) {
		__m256 x = _mm256_add_ps(_mm256_loadu_ps(v + j), bias);
		__m256i bits = _mm256_castps_si256(x);
		__m256i exp = _mm256_and_si256(_mm256_srli_epi32(bits, 23), expMask);
		__m256i isNaN = _mm256_andnot_si256(_mm256_cmpeq_epi32(_mm256_and_si256(bits, mantMask), zero), _mm256_cmpeq_epi32(exp, expMask));
		__m256i isTiny = _mm256_cmpeq_epi32(exp, zero);
		__m256 out = _mm256_set_m128(latent_sigmoid4_avx2(_mm256_extractf128_ps(x, 1), table), latent_sigmoid4_avx2(_mm256_castps256_ps128(x), table));
		out = _mm256_blendv_ps(out, _mm256_set1_ps(0.5f), _mm256_castsi256_ps(isTiny));
		out = _mm256_blendv_ps(out, x, _mm256_castsi256_ps(isNaN));
		_mm256_storeu_ps(v + j, out);
	}
	return j;
}

// latent_sigmoid_width is 16 where latent_sigmoid_avx512 runs, 8 where
// latent_sigmoid_avx2 does, else 0.
static int latent_sigmoid_width(void) {
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl")) return 16;
	if (__builtin_cpu_supports("avx2")) return 8;
	return 0;
}

static long latent_sigmoid(int width, float *v, long n, float b, const double *table) {
	if (width == 16) return latent_sigmoid_avx512(v, n, b, table);
	if (width == 8) return latent_sigmoid_avx2(v, n, b, table);
	return 0;
}

// latent_tr8x8 writes the transpose of the 8×8 block at s (rows ls apart)
// to d (rows ld apart).
__attribute__((target("avx")))
static inline void latent_tr8x8(const float *s, long ls, float *d, long ld) {
	__m256 r0 = _mm256_loadu_ps(s), r1 = _mm256_loadu_ps(s + ls);
	__m256 r2 = _mm256_loadu_ps(s + 2 * ls), r3 = _mm256_loadu_ps(s + 3 * ls);
	__m256 r4 = _mm256_loadu_ps(s + 4 * ls), r5 = _mm256_loadu_ps(s + 5 * ls);
	__m256 r6 = _mm256_loadu_ps(s + 6 * ls), r7 = _mm256_loadu_ps(s + 7 * ls);
	__m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
	__m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
	__m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
	__m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
	__m256 u0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
	__m256 u1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
	__m256 u2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
	__m256 u3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
	__m256 u4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0));
	__m256 u5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
	__m256 u6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0));
	__m256 u7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
	_mm256_storeu_ps(d, _mm256_permute2f128_ps(u0, u4, 0x20));
	_mm256_storeu_ps(d + ld, _mm256_permute2f128_ps(u1, u5, 0x20));
	_mm256_storeu_ps(d + 2 * ld, _mm256_permute2f128_ps(u2, u6, 0x20));
	_mm256_storeu_ps(d + 3 * ld, _mm256_permute2f128_ps(u3, u7, 0x20));
	_mm256_storeu_ps(d + 4 * ld, _mm256_permute2f128_ps(u0, u4, 0x31));
	_mm256_storeu_ps(d + 5 * ld, _mm256_permute2f128_ps(u1, u5, 0x31));
	_mm256_storeu_ps(d + 6 * ld, _mm256_permute2f128_ps(u2, u6, 0x31));
	_mm256_storeu_ps(d + 7 * ld, _mm256_permute2f128_ps(u3, u7, 0x31));
}

__attribute__((target("avx")))
static void latent_transpose_avx(float *dst, const float *src, long rows, long cols) {
	long r = 0;
	for (; r + 8 <= rows; r += 8) {
		long c = 0;
		for (; c + 8 <= cols; c += 8) latent_tr8x8(src + r * cols + c, cols, dst + c * rows + r, rows);
		for (; c < cols; c++)
			for (long i = 0; i < 8; i++) dst[c * rows + r + i] = src[(r + i) * cols + c];
	}
	for (; r < rows; r++)
		for (long c = 0; c < cols; c++) dst[c * rows + r] = src[r * cols + c];
}

static int latent_transpose_vector(void) {
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx");
}

// latent_interleave2 is Interleave2Go.
static void latent_interleave2(float *restrict dst, const float *restrict src, long h, long w, float bias) {
	long hw = h * w, ow = 2 * w;
	for (long p = 0; p < 2; p++) {
		for (long i = 0; i < h; i++) {
			float *row = dst + (2 * i + p) * ow;
			const float *a = src + 2 * p * hw + i * w, *b = src + (2 * p + 1) * hw + i * w;
			for (long j = 0; j < w; j++) {
				row[2 * j] = a[j] + bias;
				row[2 * j + 1] = b[j] + bias;
			}
		}
	}
}

// latent_deinterleave2 is Deinterleave2Go; act is its Act.
static void latent_deinterleave2(float *restrict dz, const float *restrict y, const float *restrict dy, long h, long w, int act) {
	long hw = h * w, ow = 2 * w;
	for (long p = 0; p < 2; p++) {
		for (long i = 0; i < h; i++) {
			const float *yr = y + (2 * i + p) * ow, *dr = dy + (2 * i + p) * ow;
			for (long q = 0; q < 2; q++) {
				float *d = dz + (2 * p + q) * hw + i * w;
				switch (act) {
				case 1:
					for (long j = 0; j < w; j++) d[j] = yr[2 * j + q] <= 0 ? 0.0f : dr[2 * j + q];
					break;
				case 2:
					for (long j = 0; j < w; j++) {
						float v = yr[2 * j + q], g = dr[2 * j + q] * v * (1 - v);
						d[j] = g != 0 && fabsf(g) < 0x1p-100f ? 0.0f : g; // SigmoidGrad
					}
					break;
				default:
					for (long j = 0; j < w; j++) d[j] = dr[2 * j + q];
				}
			}
		}
	}
}

// latent_interleave2_avx512 is latent_interleave2 on planes planes (dst's
// and src's 4·h·w values each), plane c with bias[c], and with relu then
// BiasReLUScalar's ReLU (bias 0), 16 values of each of two rows of src at
// a time, interleaved with permutes into 32 of dst's. The same arithmetic,
// value by value.
__attribute__((target("avx512f")))
static void latent_interleave2_avx512(float *dst, const float *src, long planes, long h, long w, const float *bias, int relu) {
	const __m512i lo = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
	const __m512i hi = _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
	const __m512 zero = _mm512_setzero_ps();
	const long hw = h * w, ow = 2 * w;
	for (long c = 0; c < planes; c++) {
		const __m512 b = _mm512_set1_ps(bias[c]);
		for (long p = 0; p < 2; p++) {
			for (long i = 0; i < h; i++) {
				float *row = dst + c * 4 * hw + (2 * i + p) * ow;
				const float *a = src + c * 4 * hw + 2 * p * hw + i * w, *e = a + hw;
				for (long j = 0; j < w; j += 16) {
					const long left = w - j;
					const __mmask16 k = latent_tail(left), klo = latent_tail(2 * left), khi = latent_tail(2 * left - 16);
					__m512 va = _mm512_add_ps(_mm512_maskz_loadu_ps(k, a + j), b), vb = _mm512_add_ps(_mm512_maskz_loadu_ps(k, e + j), b);
					if (relu) {
						va = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(va, zero, _CMP_NLE_UQ), va);
						vb = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(vb, zero, _CMP_NLE_UQ), vb);
					}
					_mm512_mask_storeu_ps(row + 2 * j, klo, _mm512_permutex2var_ps(va, lo, vb));
					_mm512_mask_storeu_ps(row + 2 * j + 16, khi, _mm512_permutex2var_ps(va, hi, vb));
				}
			}
		}
	}
}

// latent_deinterleave2_avx512 is latent_deinterleave2 on planes planes
// (dz's 4·h·w values a plane, y's and dy's 4·h·w), 16 values of a row of dz
// at a time: the 32 values of y's and dy's row that they come from, split
// into their even and odd lanes with permutes. The same arithmetic, value
// by value.
__attribute__((target("avx512f")))
static void latent_deinterleave2_avx512(float *dz, const float *y, const float *dy, long planes, long h, long w, int act) {
	const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
	const __m512i odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
	const __m512 zero = _mm512_setzero_ps(), one = _mm512_set1_ps(1), floor = _mm512_set1_ps(0x1p-100f);
	const __m512i magnitude = _mm512_set1_epi32(0x7fffffff);
	const long hw = h * w, ow = 2 * w;
	for (long pl = 0; pl < planes; pl++) {
		for (long p = 0; p < 2; p++) {
			for (long i = 0; i < h; i++) {
				const float *yr = y + pl * 4 * hw + (2 * i + p) * ow, *dr = dy + pl * 4 * hw + (2 * i + p) * ow;
				float *d0 = dz + pl * 4 * hw + 2 * p * hw + i * w, *d1 = d0 + hw;
				for (long j = 0; j < w; j += 16) {
					const long left = w - j;
					const __mmask16 k = latent_tail(left), klo = latent_tail(2 * left), khi = latent_tail(2 * left - 16);
					const __m512 y0 = _mm512_maskz_loadu_ps(klo, yr + 2 * j), y1 = _mm512_maskz_loadu_ps(khi, yr + 2 * j + 16);
					const __m512 g0 = _mm512_maskz_loadu_ps(klo, dr + 2 * j), g1 = _mm512_maskz_loadu_ps(khi, dr + 2 * j + 16);
					__m512 v[2] = {_mm512_permutex2var_ps(y0, even, y1), _mm512_permutex2var_ps(y0, odd, y1)};
					__m512 g[2] = {_mm512_permutex2var_ps(g0, even, g1), _mm512_permutex2var_ps(g0, odd, g1)};
					for (int q = 0; q < 2; q++) {
						if (act == 1) {
							g[q] = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v[q], zero, _CMP_NLE_UQ), g[q]);
						} else if (act == 2) {
							__m512 s = _mm512_mul_ps(_mm512_mul_ps(g[q], v[q]), _mm512_sub_ps(one, v[q]));
							__m512 a = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(s), magnitude));
							__mmask16 flush = _mm512_cmp_ps_mask(a, floor, _CMP_LT_OQ) & _mm512_cmp_ps_mask(s, zero, _CMP_NEQ_UQ);
							g[q] = _mm512_mask_mov_ps(s, flush, zero);
						}
					}
					_mm512_mask_storeu_ps(d0 + j, k, g[0]);
					_mm512_mask_storeu_ps(d1 + j, k, g[1]);
				}
			}
		}
	}
}

// The element-wise kernels' AVX2 forms: the same operations on 8 values
// at a time, the tails under masks, so the same bits.

__attribute__((target("avx2")))
static void latent_bias_relu8(float *v, const float *b, long n) {
	const __m256 zero = _mm256_setzero_ps();
	for (long j = 0; j < n; j += 8) {
		const __m256i k = latent_mask8(n - j);
		__m256 x = _mm256_add_ps(_mm256_maskload_ps(v + j, k), _mm256_maskload_ps(b + j, k));
		latent_store8(v + j, k, _mm256_and_ps(_mm256_cmp_ps(x, zero, _CMP_NLE_UQ), x), n - j >= 8);
	}
}

__attribute__((target("avx2")))
static void latent_relu_grad8(float *dz, const float *y, const float *dy, long n) {
	const __m256 zero = _mm256_setzero_ps();
	for (long j = 0; j < n; j += 8) {
		const __m256i k = latent_mask8(n - j);
		__m256 keep = _mm256_cmp_ps(_mm256_maskload_ps(y + j, k), zero, _CMP_NLE_UQ);
		latent_store8(dz + j, k, _mm256_and_ps(keep, _mm256_maskload_ps(dy + j, k)), n - j >= 8);
	}
}

// latent_mse_sigmoid_grad8 is MSESigmoidGradGo: dz = SigmoidGrad(k·(y − x),
// y), 8 values at a time, each product rounded as Go rounds it; it returns
// whether every y − x is finite.
__attribute__((target("avx2")))
static int latent_mse_sigmoid_grad8(float *dz, const float *y, const float *x, float k, long n) {
	const __m256 kv = _mm256_set1_ps(k), one = _mm256_set1_ps(1.0f), floor = _mm256_set1_ps(0x1p-100f);
	const __m256 zero = _mm256_setzero_ps(), abs = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
	__m256 sum = zero;
	for (long j = 0; j < n; j += 8) {
		const __m256i m = latent_mask8(n - j);
		const __m256 yv = _mm256_maskload_ps(y + j, m);
		const __m256 d = _mm256_sub_ps(yv, _mm256_maskload_ps(x + j, m));
		sum = _mm256_add_ps(sum, _mm256_sub_ps(d, d));
		__m256 g = _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(kv, d), yv), _mm256_sub_ps(one, yv));
		const __m256 tiny = _mm256_and_ps(_mm256_cmp_ps(_mm256_and_ps(g, abs), floor, _CMP_LT_OQ),
			_mm256_cmp_ps(g, zero, _CMP_NEQ_OQ));
		latent_store8(dz + j, m, _mm256_andnot_ps(tiny, g), n - j >= 8);
	}
	return _mm256_movemask_ps(_mm256_cmp_ps(sum, zero, _CMP_NEQ_UQ)) == 0;
}

__attribute__((target("avx2")))
static void latent_add_rows8(float *s, const float *v, long rows, long n, long ld) {
	for (long j = 0; j < n; j += 8) {
		const __m256i k = latent_mask8(n - j);
		__m256 acc = _mm256_maskload_ps(s + j, k);
		for (long r = 0; r < rows; r++) acc = _mm256_add_ps(acc, _mm256_maskload_ps(v + r * ld + j, k));
		latent_store8(s + j, k, acc, n - j >= 8);
	}
}

__attribute__((target("avx2")))
static void latent_bias_relu_scalar8(float *v, float b, long n) {
	const __m256 bv = _mm256_set1_ps(b), zero = _mm256_setzero_ps();
	for (long j = 0; j < n; j += 8) {
		const __m256i k = latent_mask8(n - j);
		__m256 x = _mm256_add_ps(_mm256_maskload_ps(v + j, k), bv);
		latent_store8(v + j, k, _mm256_and_ps(_mm256_cmp_ps(x, zero, _CMP_NLE_UQ), x), n - j >= 8);
	}
}

// latent_codes8 returns the min(n, 8) pooling codes at p in its low bytes,
// zero above, reading only [lo, hi), which holds them: 8 bytes from p, or
// the 8 that end at p+n, where [lo, hi) has them, else a byte at a time.
// (Bytes stored one at a time and read back as 8 stall the read.)
static inline uint64_t latent_codes8(const uint8_t *p, long n, const uint8_t *lo, const uint8_t *hi) {
	uint64_t v = 0;
	if (n >= 8) n = 8;
	if (hi - p >= 8) {
		__builtin_memcpy(&v, p, 8);
		return n == 8 ? v : v & ((1ull << (8 * n)) - 1);
	}
	if (p + n - lo >= 8) {
		__builtin_memcpy(&v, p + n - 8, 8);
		return v >> (8 * (8 - n));
	}
	for (long l = 0; l < n; l++) v |= (uint64_t)p[l] << (8 * l);
	return v;
}

// latent_maxpool2x2_grad8 is latent_maxpool2x2_grad with AVX2, 8 windows
// at a time: each window's four gradients selected by its code, and
// interleaved back into its two rows with unpacks.
__attribute__((target("avx2")))
static void latent_maxpool2x2_grad8(float *grad, long planes, long w, long hw, long oh, long ow, const float *dy, const uint8_t *where, int relu) {
	const __m256i three = _mm256_set1_epi32(3), four = _mm256_set1_epi32(4), zero = _mm256_setzero_si256();
	const long ohw = oh * ow;
	for (long p = 0; p < planes; p++) {
		float *g = grad + p * hw;
		if (2 * oh * w != hw || 2 * ow != w) {
			for (long i = 0; i < hw; i++) g[i] = 0;
		}
		for (long oy = 0; oy < oh; oy++) {
			float *r0 = g + 2 * oy * w, *r1 = r0 + w;
			const float *dp = dy + p * ohw + oy * ow;
			const uint8_t *wp = where + p * ohw + oy * ow;
			for (long ox = 0; ox < ow; ox += 8) {
				const long left = ow - ox;
				const __m256i k = latent_mask8(left), klo = latent_mask8(2 * left), khi = latent_mask8(2 * left - 8);
				__m256 d = _mm256_maskload_ps(dp + ox, k);
				// The codes gathered in a register: bytes stored one at a
				// time and loaded as 8 stall the load (no forwarding).
				__m256i c = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)latent_codes8(wp + ox, left, wp, wp + ow)));
				if (relu) d = _mm256_andnot_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_and_si256(c, four), zero)), d);
				__m256i pos = _mm256_and_si256(c, three);
				__m256 a = _mm256_and_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(pos, zero)), d);
				__m256 b = _mm256_and_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(pos, _mm256_set1_epi32(1))), d);
				__m256 cc = _mm256_and_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(pos, _mm256_set1_epi32(2))), d);
				__m256 e = _mm256_and_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(pos, three)), d);
				__m256 lo, hi;
				latent_interleave8(a, b, &lo, &hi);
				latent_store8(r0 + 2 * ox, klo, lo, left >= 4);
				latent_store8(r0 + 2 * ox + 8, khi, hi, left >= 8);
				latent_interleave8(cc, e, &lo, &hi);
				latent_store8(r1 + 2 * ox, klo, lo, left >= 4);
				latent_store8(r1 + 2 * ox + 8, khi, hi, left >= 8);
			}
		}
	}
}

// latent_interleave2_avx2 is latent_interleave2_avx512 with AVX2: 8 values
// of each of two rows of src at a time, interleaved with unpacks into 16
// of dst's.
__attribute__((target("avx2")))
static void latent_interleave2_avx2(float *dst, const float *src, long planes, long h, long w, const float *bias, int relu) {
	const __m256 zero = _mm256_setzero_ps();
	const long hw = h * w, ow = 2 * w;
	for (long c = 0; c < planes; c++) {
		const __m256 b = _mm256_set1_ps(bias[c]);
		for (long p = 0; p < 2; p++) {
			for (long i = 0; i < h; i++) {
				float *row = dst + c * 4 * hw + (2 * i + p) * ow;
				const float *a = src + c * 4 * hw + 2 * p * hw + i * w, *e = a + hw;
				for (long j = 0; j < w; j += 8) {
					const long left = w - j;
					const __m256i k = latent_mask8(left), klo = latent_mask8(2 * left), khi = latent_mask8(2 * left - 8);
					__m256 va = _mm256_add_ps(_mm256_maskload_ps(a + j, k), b), vb = _mm256_add_ps(_mm256_maskload_ps(e + j, k), b);
					if (relu) {
						va = _mm256_and_ps(_mm256_cmp_ps(va, zero, _CMP_NLE_UQ), va);
						vb = _mm256_and_ps(_mm256_cmp_ps(vb, zero, _CMP_NLE_UQ), vb);
					}
					__m256 lo, hi;
					latent_interleave8(va, vb, &lo, &hi);
					latent_store8(row + 2 * j, klo, lo, left >= 4);
					latent_store8(row + 2 * j + 8, khi, hi, left >= 8);
				}
			}
		}
	}
}

// latent_deinterleave2_avx2 is latent_deinterleave2_avx512 with AVX2: 8
// values of a row of dz at a time, from the 16 of y's and dy's row that
// they come from, split into their even and odd lanes with shuffles.
__attribute__((target("avx2")))
static void latent_deinterleave2_avx2(float *dz, const float *y, const float *dy, long planes, long h, long w, int act) {
	const __m256 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1), floor = _mm256_set1_ps(0x1p-100f);
	const __m256 magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
	const long hw = h * w, ow = 2 * w;
	for (long pl = 0; pl < planes; pl++) {
		for (long p = 0; p < 2; p++) {
			for (long i = 0; i < h; i++) {
				const float *yr = y + pl * 4 * hw + (2 * i + p) * ow, *dr = dy + pl * 4 * hw + (2 * i + p) * ow;
				float *d0 = dz + pl * 4 * hw + 2 * p * hw + i * w, *d1 = d0 + hw;
				for (long j = 0; j < w; j += 8) {
					const long left = w - j;
					const __m256i k = latent_mask8(left), klo = latent_mask8(2 * left), khi = latent_mask8(2 * left - 8);
					const __m256 y0 = _mm256_maskload_ps(yr + 2 * j, klo), y1 = _mm256_maskload_ps(yr + 2 * j + 8, khi);
					const __m256 g0 = _mm256_maskload_ps(dr + 2 * j, klo), g1 = _mm256_maskload_ps(dr + 2 * j + 8, khi);
					__m256 v[2] = {latent_even8(y0, y1), latent_odd8(y0, y1)}, g[2] = {latent_even8(g0, g1), latent_odd8(g0, g1)};
					for (int q = 0; q < 2; q++) {
						if (act == 1) {
							g[q] = _mm256_and_ps(_mm256_cmp_ps(v[q], zero, _CMP_NLE_UQ), g[q]);
						} else if (act == 2) {
							__m256 s = _mm256_mul_ps(_mm256_mul_ps(g[q], v[q]), _mm256_sub_ps(one, v[q]));
							__m256 a = _mm256_and_ps(s, magnitude);
							__m256 flush = _mm256_and_ps(_mm256_cmp_ps(a, floor, _CMP_LT_OQ), _mm256_cmp_ps(s, zero, _CMP_NEQ_UQ));
							g[q] = _mm256_andnot_ps(flush, s);
						}
					}
					latent_store8(d0 + j, k, g[0], left >= 8);
					latent_store8(d1 + j, k, g[1], left >= 8);
				}
			}
		}
	}
}

// latent_im2col_same is Im2ColSameGo for planes whose padded size fits
// LATENT_PAD_MAX: each channel's plane is copied once into a zero-padded
// one, and each row of columns is then h runs of w values, copied 16 at a
// time with masked loads and stores.
#define LATENT_PAD_MAX 4096
__attribute__((target("avx512f")))
static void latent_im2col_same(float *dst, const float *x, long c, long h, long w, long k, long pad, long r0, long r1) {
	float padded[LATENT_PAD_MAX];
	long W2 = w + 2 * pad, H2 = h + 2 * pad, hw = h * w, prev = -1;
	for (long r = r0; r < r1; r++) {
		long ch = r / (k * k), i = r / k % k, j = r % k;
		if (ch != prev) {
			for (long t = 0; t < H2 * W2; t += 16) _mm512_mask_storeu_ps(padded + t, latent_tail(H2 * W2 - t), _mm512_setzero_ps());
			for (long y = 0; y < h; y++) {
				for (long t = 0; t < w; t += 16) {
					__mmask16 m = latent_tail(w - t);
					_mm512_mask_storeu_ps(padded + (y + pad) * W2 + pad + t, m, _mm512_maskz_loadu_ps(m, x + ch * hw + y * w + t));
				}
			}
			prev = ch;
		}
		float *d = dst + (r - r0) * hw;
		const float *src = padded + i * W2 + j;
		for (long oy = 0; oy < h; oy++) {
			for (long ox = 0; ox < w; ox += 16) {
				__mmask16 m = latent_tail(w - ox);
				_mm512_mask_storeu_ps(d + oy * w + ox, m, _mm512_maskz_loadu_ps(m, src + oy * W2 + ox));
			}
		}
	}
}

// latent_conv3x3_ref is latent_conv3x3's scalar reference: one sample's
// 3×3 convolution with stride 1 and padding 1, without bias,
// y[co, r, c] = Σ over ci, then ky, then kx, of w[co, ci, ky, kx] ·
// x[ci, r+ky-1, c+kx-1] (0 outside x), each value summed in that order
// from +0 with one correctly rounded fused multiply-add (fmaf) a term, the
// padding's zeros included (so an infinite weight gives NaN there, as a
// product with the im2col columns does).
static void latent_conv3x3_ref(float *y, const float *x, const float *w, long cin, long cout, long h, long wd) {
	for (long co = 0; co < cout; co++) {
		for (long r = 0; r < h; r++) {
			for (long c = 0; c < wd; c++) {
				float acc = 0;
				for (long ci = 0; ci < cin; ci++) {
					for (long ky = 0; ky < 3; ky++) {
						for (long kx = 0; kx < 3; kx++) {
							long iy = r + ky - 1, ix = c + kx - 1;
							float v = iy >= 0 && iy < h && ix >= 0 && ix < wd ? x[(ci * h + iy) * wd + ix] : 0;
							acc = fmaf(w[((co * cin + ci) * 3 + ky) * 3 + kx], v, acc);
						}
					}
				}
				y[(co * h + r) * wd + c] = acc;
			}
		}
	}
}

// LATENT_CONV_ROW is the row stride of latent_conv3x3's padded planes for
// rows of up to 14 values: a row and its two zeros of padding fit one
// register. Rows of 15 to 30 values take two registers and twice the
// stride.
#define LATENT_CONV_ROW 16
#define LATENT_CONV_MAX 16384

// latent_conv3x3_body is latent_conv3x3_ref with AVX-512 on n samples, the
// same bits, for rows of at most 16·NH−2 values and cout a multiple of CB:
// each output row is NH registers (a lane a column), and a block of CB
// output channels × 2 rows sums its 2·CB·NH registers over ci, ky, kx in
// order, each term one fused multiply-add of a broadcast weight and a row
// of the zero-padded input plane (a copy, 16·NH values a row). The lanes
// past the row's end add terms of the next row's values and are not
// stored. The weights are copied once, a block's CB weights of a term side
// by side.
//
// With bias, each output then becomes latent_bias_relu_scalar's max(v+b,
// 0) (NaN kept, -0 made +0) before it is stored; with pooled too (h and wd
// even), the block's two rows are pooled in registers as
// latent_maxpool2x2 pools them, into pooled [n, cout, h/2, wd/2] and, with
// where, the codes it records. Each value is the one the separate kernels
// would compute from y, bit for bit.
__attribute__((target("avx512f"), always_inline))
static inline void latent_conv3x3_body(float *y, const float *x, const float *w, long n, long cin, long cout, long h, long wd,
	const float *bias, float *pooled, uint8_t *where, const int NH, const int CB) {
	float pad[LATENT_CONV_MAX], wpk[LATENT_CONV_MAX];
	const long R = 16 * NH, plane = (h + 2) * R;
	for (long t = 0; t < cin * plane + 3 * R; t += 16) _mm512_storeu_ps(pad + t, _mm512_setzero_ps());
	// wpk[((co/CB·cin + ci)·9 + t)·CB + q] = w[co+q, ci, t].
	for (long co = 0; co < cout; co += CB) {
		for (long ci = 0; ci < cin; ci++) {
			for (int t = 0; t < 9; t++) {
				for (int q = 0; q < CB; q++) wpk[((co / CB * cin + ci) * 9 + t) * CB + q] = w[((co + q) * cin + ci) * 9 + t];
			}
		}
	}
	const __mmask16 k0 = latent_tail(wd), k1 = wd > 16 ? latent_tail(wd - 16) : 0;
	const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
	const __m512i odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
	const __m512 zero = _mm512_setzero_ps();
	const long ph = h / 2, pw = wd / 2;
	const __mmask16 kp = latent_tail(pw);
	for (long s = 0; s < n; s++) {
		// The rows' values; their padding stays zero from sample to sample.
		for (long ci = 0; ci < cin; ci++) {
			for (long r = 0; r < h; r++) {
				float *dst = pad + ci * plane + (r + 1) * R + 1;
				const float *src = x + ((s * cin + ci) * h + r) * wd;
				_mm512_mask_storeu_ps(dst, k0, _mm512_maskz_loadu_ps(k0, src));
				if (NH == 2) _mm512_mask_storeu_ps(dst + 16, k1, _mm512_maskz_loadu_ps(k1, src + 16));
			}
		}
		for (long co = 0; co < cout; co += CB) {
			for (long r = 0; r < h; r += 2) {
				__m512 acc[8][2][2]; // fixed sizes, not CB and NH: a variable-length array would live on the stack
				_Pragma("GCC unroll 8") for (int q = 0; q < CB; q++) {
					_Pragma("GCC unroll 2") for (int i = 0; i < 2; i++) {
						_Pragma("GCC unroll 2") for (int u = 0; u < NH; u++) acc[q][i][u] = zero;
					}
				}
				for (long ci = 0; ci < cin; ci++) {
					const float *in = pad + ci * plane + r * R;
					const float *wc = wpk + (co / CB * cin + ci) * 9 * CB;
					_Pragma("GCC unroll 3") for (int ky = 0; ky < 3; ky++) {
						_Pragma("GCC unroll 3") for (int kx = 0; kx < 3; kx++) {
							__m512 iv[2][2];
							_Pragma("GCC unroll 2") for (int i = 0; i < 2; i++) {
								_Pragma("GCC unroll 2") for (int u = 0; u < NH; u++) iv[i][u] = _mm512_loadu_ps(in + (ky + i) * R + kx + 16 * u);
							}
							_Pragma("GCC unroll 8") for (int q = 0; q < CB; q++) {
								__m512 wv = _mm512_set1_ps(wc[(ky * 3 + kx) * CB + q]);
								_Pragma("GCC unroll 2") for (int i = 0; i < 2; i++) {
									_Pragma("GCC unroll 2") for (int u = 0; u < NH; u++) acc[q][i][u] = _mm512_fmadd_ps(wv, iv[i][u], acc[q][i][u]);
								}
							}
						}
					}
				}
				_Pragma("GCC unroll 8") for (int q = 0; q < CB; q++) {
					if (bias) {
						const __m512 bv = _mm512_set1_ps(bias[co + q]);
						_Pragma("GCC unroll 2") for (int i = 0; i < 2; i++) {
							_Pragma("GCC unroll 2") for (int u = 0; u < NH; u++) {
								__m512 v = _mm512_add_ps(acc[q][i][u], bv);
								acc[q][i][u] = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v, zero, _CMP_NLE_UQ), v);
							}
						}
					}
					if (y) {
						float *yr = y + ((s * cout + co + q) * h + r) * wd;
						_mm512_mask_storeu_ps(yr, k0, acc[q][0][0]);
						if (NH == 2) _mm512_mask_storeu_ps(yr + 16, k1, acc[q][0][NH - 1]);
						if (r + 1 < h) {
							_mm512_mask_storeu_ps(yr + wd, k0, acc[q][1][0]);
							if (NH == 2) _mm512_mask_storeu_ps(yr + wd + 16, k1, acc[q][1][NH - 1]);
						}
					}
					if (!pooled) continue;
					__m512 hi0 = NH == 2 ? acc[q][0][NH - 1] : zero, hi1 = NH == 2 ? acc[q][1][NH - 1] : zero;
					__m512 a = _mm512_permutex2var_ps(acc[q][0][0], even, hi0), b = _mm512_permutex2var_ps(acc[q][0][0], odd, hi0);
					__m512 c = _mm512_permutex2var_ps(acc[q][1][0], even, hi1), e = _mm512_permutex2var_ps(acc[q][1][0], odd, hi1);
					__m512 m0 = latent_gomax(a, b), m1 = latent_gomax(c, e), m = latent_gomax(m0, m1);
					const long at = ((s * cout + co + q) * ph + r / 2) * pw;
					_mm512_mask_storeu_ps(pooled + at, kp, m);
					if (!where) continue;
					// The first maximum in row-major order: a, b, c, e.
					__m512i s0 = _mm512_maskz_set1_epi32(_mm512_cmp_ps_mask(b, a, _CMP_GT_OQ), 1);
					__m512i s1 = _mm512_add_epi32(_mm512_set1_epi32(2), _mm512_maskz_set1_epi32(_mm512_cmp_ps_mask(e, c, _CMP_GT_OQ), 1));
					__m512i code = _mm512_mask_mov_epi32(s0, _mm512_cmp_ps_mask(m1, m0, _CMP_GT_OQ), s1);
					code = _mm512_mask_add_epi32(code, _mm512_cmp_ps_mask(m, zero, _CMP_NLE_UQ), code, _mm512_set1_epi32(4));
					_mm512_mask_cvtepi32_storeu_epi8(where + at, kp, code);
				}
			}
		}
	}
}

// latent_conv3x3 is latent_conv3x3_body for rows of up to 14 values (one
// register, blocks of 8 channels) or 30 (two registers, blocks of 4).
__attribute__((target("avx512f")))
static void latent_conv3x3(float *y, const float *x, const float *w, long n, long cin, long cout, long h, long wd,
	const float *bias, float *pooled, uint8_t *where) {
	if (wd <= 14) latent_conv3x3_body(y, x, w, n, cin, cout, h, wd, bias, pooled, where, 1, 8);
	else latent_conv3x3_body(y, x, w, n, cin, cout, h, wd, bias, pooled, where, 2, 4);
}

// latent_relumax8 is Go's max of each lane (NaN first) for the outputs of
// a ReLU, which are +0, above it or NaN: with no -0 among them, the
// maximum needs no care for signed zeros.
__attribute__((target("avx2"), always_inline))
static inline __m256 latent_relumax8(__m256 x, __m256 y) {
	return _mm256_blendv_ps(_mm256_max_ps(x, y), _mm256_add_ps(x, y), _mm256_cmp_ps(x, y, _CMP_UNORD_Q));
}

// latent_pool8 pools the columns of two rows of a ReLU's outputs, each two
// registers (a, b: 16 columns), into 8 values: the maxima of the 2×2
// windows, Go's max in the order of latent_maxpool2x2, and in codes their
// places (0–3, row-major, the first maximum), plus 4 where the maximum is
// above zero or NaN. The windows are split into even and odd columns
// within each 128-bit half (lanes 0–1 of a, 0–1 of b | 2–3 of a, 2–3 of
// b), and put in order once, at the end.
__attribute__((target("avx2"), always_inline))
static inline __m256 latent_pool8(__m256 a0, __m256 b0, __m256 a1, __m256 b1, __m256i *codes) {
	const __m256 a = _mm256_shuffle_ps(a0, b0, _MM_SHUFFLE(2, 0, 2, 0)), b = _mm256_shuffle_ps(a0, b0, _MM_SHUFFLE(3, 1, 3, 1));
	const __m256 c = _mm256_shuffle_ps(a1, b1, _MM_SHUFFLE(2, 0, 2, 0)), e = _mm256_shuffle_ps(a1, b1, _MM_SHUFFLE(3, 1, 3, 1));
	const __m256 m0 = latent_relumax8(a, b), m1 = latent_relumax8(c, e), m = latent_relumax8(m0, m1);
	const __m256i one = _mm256_set1_epi32(1);
	__m256i s0 = _mm256_and_si256(_mm256_castps_si256(_mm256_cmp_ps(b, a, _CMP_GT_OQ)), one);
	__m256i s1 = _mm256_add_epi32(_mm256_set1_epi32(2), _mm256_and_si256(_mm256_castps_si256(_mm256_cmp_ps(e, c, _CMP_GT_OQ)), one));
	__m256i code = _mm256_blendv_epi8(s0, s1, _mm256_castps_si256(_mm256_cmp_ps(m1, m0, _CMP_GT_OQ)));
	code = _mm256_add_epi32(code, _mm256_and_si256(_mm256_castps_si256(_mm256_cmp_ps(m, _mm256_setzero_ps(), _CMP_NLE_UQ)), _mm256_set1_epi32(4)));
	*codes = _mm256_permute4x64_epi64(code, 0xd8);
	return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(m), 0xd8));
}

// latent_store_codes8 stores the low bytes of codes' first n lanes (all 8
// where n ≥ 8) at d: packed in a register, where a copy through memory
// and a byte at a time took a sixth of the first layer's convolution.
__attribute__((target("avx2"), always_inline))
static inline void latent_store_codes8(uint8_t *d, __m256i codes, long n) {
	const __m256i pick = _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
		0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
	const __m256i b = _mm256_shuffle_epi8(codes, pick);
	const uint64_t v = (uint64_t)(uint32_t)_mm_cvtsi128_si32(_mm256_castsi256_si128(b)) |
		(uint64_t)(uint32_t)_mm_cvtsi128_si32(_mm256_extracti128_si256(b, 1)) << 32;
	if (n >= 8) {
		__builtin_memcpy(d, &v, 8);
		return;
	}
	for (long l = 0; l < n; l++) d[l] = (uint8_t)(v >> (8 * l));
}

// latent_conv3x3_body8 is latent_conv3x3_body with AVX2 and FMA, the same
// bits: the same padded planes (LATENT_CONV_ROW·NH values a row), each
// output row 2·NH registers of 8 lanes, blocks of CB output channels × 2
// rows, every value summed over ci, ky, kx in order, one fused
// multiply-add a term; then the same bias, ReLU and pooling.
__attribute__((target("avx2,fma"), always_inline))
static inline void latent_conv3x3_body8(float *y, const float *x, const float *w, long n, long cin, long cout, long h, long wd,
	const float *bias, float *pooled, uint8_t *where, const int NH, const int CB) {
	float pad[LATENT_CONV_MAX], wpk[LATENT_CONV_MAX];
	const int NV = 2 * NH;
	const long R = 16 * NH, plane = (h + 2) * R;
	for (long t = 0; t < cin * plane + 3 * R; t++) pad[t] = 0;
	for (long co = 0; co < cout; co += CB) {
		for (long ci = 0; ci < cin; ci++) {
			for (int t = 0; t < 9; t++) {
				for (int q = 0; q < CB; q++) wpk[((co / CB * cin + ci) * 9 + t) * CB + q] = w[((co + q) * cin + ci) * 9 + t];
			}
		}
	}
	__m256i ky8[4], kp8[2];
	for (int u = 0; u < 4; u++) ky8[u] = latent_mask8(wd - 8 * u);
	const long ph = h / 2, pw = wd / 2;
	for (int u = 0; u < 2; u++) kp8[u] = latent_mask8(pw - 8 * u);
	const __m256 zero = _mm256_setzero_ps();
	for (long s = 0; s < n; s++) {
		for (long ci = 0; ci < cin; ci++) {
			for (long r = 0; r < h; r++) {
				float *dst = pad + ci * plane + (r + 1) * R + 1;
				const float *src = x + ((s * cin + ci) * h + r) * wd;
				for (long c = 0; c < wd; c++) dst[c] = src[c];
			}
		}
		for (long co = 0; co < cout; co += CB) {
			for (long r = 0; r < h; r += 2) {
				__m256 acc[2][2][4];
				_Pragma("GCC unroll 2") for (int q = 0; q < CB; q++) {
					_Pragma("GCC unroll 2") for (int i = 0; i < 2; i++) {
						_Pragma("GCC unroll 4") for (int u = 0; u < NV; u++) acc[q][i][u] = zero;
					}
				}
				for (long ci = 0; ci < cin; ci++) {
					const float *in = pad + ci * plane + r * R;
					const float *wc = wpk + (co / CB * cin + ci) * 9 * CB;
					_Pragma("GCC unroll 3") for (int ky = 0; ky < 3; ky++) {
						_Pragma("GCC unroll 3") for (int kx = 0; kx < 3; kx++) {
							__m256 wv[2];
							_Pragma("GCC unroll 2") for (int q = 0; q < CB; q++) wv[q] = _mm256_broadcast_ss(wc + (ky * 3 + kx) * CB + q);
							_Pragma("GCC unroll 2") for (int i = 0; i < 2; i++) {
								_Pragma("GCC unroll 4") for (int u = 0; u < NV; u++) {
									__m256 iv = _mm256_loadu_ps(in + (ky + i) * R + kx + 8 * u);
									__asm__("" : "+x"(iv)); // one load for the CB channels, not one each
									_Pragma("GCC unroll 2") for (int q = 0; q < CB; q++) acc[q][i][u] = _mm256_fmadd_ps(wv[q], iv, acc[q][i][u]);
								}
							}
						}
					}
				}
				_Pragma("GCC unroll 2") for (int q = 0; q < CB; q++) {
					if (bias) {
						const __m256 bv = _mm256_set1_ps(bias[co + q]);
						_Pragma("GCC unroll 2") for (int i = 0; i < 2; i++) {
							_Pragma("GCC unroll 4") for (int u = 0; u < NV; u++) {
								__m256 v = _mm256_add_ps(acc[q][i][u], bv);
								acc[q][i][u] = _mm256_and_ps(_mm256_cmp_ps(v, zero, _CMP_NLE_UQ), v);
							}
						}
					}
					if (y) {
						float *yr = y + ((s * cout + co + q) * h + r) * wd;
						_Pragma("GCC unroll 4") for (int u = 0; u < NV; u++) {
							if (8 * u < wd) latent_store8(yr + 8 * u, ky8[u], acc[q][0][u], 8 * u + 8 <= wd);
							if (8 * u < wd && r + 1 < h) latent_store8(yr + wd + 8 * u, ky8[u], acc[q][1][u], 8 * u + 8 <= wd);
						}
					}
					if (!pooled) continue;
					const long at = ((s * cout + co + q) * ph + r / 2) * pw;
					_Pragma("GCC unroll 2") for (int t = 0; t < NH; t++) {
						if (8 * t >= pw) break;
						__m256i codes;
						__m256 m = latent_pool8(acc[q][0][2 * t], acc[q][0][2 * t + 1], acc[q][1][2 * t], acc[q][1][2 * t + 1], &codes);
						latent_store8(pooled + at + 8 * t, kp8[t], m, 8 * t + 8 <= pw);
						if (where) latent_store_codes8(where + at + 8 * t, codes, pw - 8 * t);
					}
				}
			}
		}
	}
}

// latent_conv3x3_avx2 is latent_conv3x3_body8 for rows of up to 14 values
// (two registers, blocks of 2 channels) or 30 (four, one channel).
__attribute__((target("avx2,fma"), noinline))
static void latent_conv3x3_avx2_14(float *y, const float *x, const float *w, long n, long cin, long cout, long h, long wd,
	const float *bias, float *pooled, uint8_t *where) {
	latent_conv3x3_body8(y, x, w, n, cin, cout, h, wd, bias, pooled, where, 1, 2);
}

__attribute__((target("avx2,fma"), noinline))
static void latent_conv3x3_avx2_30(float *y, const float *x, const float *w, long n, long cin, long cout, long h, long wd,
	const float *bias, float *pooled, uint8_t *where) {
	latent_conv3x3_body8(y, x, w, n, cin, cout, h, wd, bias, pooled, where, 2, 1);
}

// latent_conv3x3_pool_cl is whether latent_conv3x3_avx2 takes the layers
// it can with latent_conv3x3_pool_cl_avx2 (the tests set it to check both).
static int latent_conv3x3_pool_cl = 1;
static void latent_set_conv3x3_pool_cl(int on) { latent_conv3x3_pool_cl = on; }

// latent_conv3x3_pool_cl_avx2 is latent_conv3x3_body8 with its bias, ReLU
// and pooling and no y, for rows of up to 14 values, 16 output channels or
// more (a multiple of 16) and 2 input channels or more, with the output
// channels as the lanes: a block of LATENT_CL_P = 5 positions (in the
// plane's order, across rows) × 16 channels is 10 registers, and each term
// a broadcast input value times 8 channels' weights, so no lane idles past
// a row's end and each input value is loaded once for 16 channels (6
// positions, 12 registers, had the compiler spill). Every value is
// the same chain of fused multiply-adds over ci, ky, kx in order, from
// zero, so the same bits. A sample's sums go to cl [h·wd, cout] (the
// channels last), which the pooling reads 8 channels at a time (the same
// bias, ReLU, maxima and codes as latent_pool8), into [ph·pw, cout], then
// out to pooled and where in their layout.
#define LATENT_CL_P 5
__attribute__((target("avx2,fma"), noinline))
static void latent_conv3x3_pool_cl_avx2(const float *x, const float *w, long n, long cin, long cout, long h, long wd,
	const float *bias, float *pooled, uint8_t *where) {
	const long plane = (h + 2) * 16, hw = h * wd, ph = h / 2, pw = wd / 2, phw = ph * pw;
	const long blocks = (hw + LATENT_CL_P - 1) / LATENT_CL_P;
	// On the stack, each the size the layer needs (the 16→32 layer's: 70
	// KB in all), which latent_conv3x3_pool_cl_fits bounds.
	float pad[cin * plane + 48] __attribute__((aligned(32))), wq[cout * cin * 9] __attribute__((aligned(32)));
	float cl[hw * cout] __attribute__((aligned(32))), pcl[phw * cout] __attribute__((aligned(32)));
	uint8_t ccl[phw * cout];
	long off[blocks * LATENT_CL_P];
	for (long t = 0; t < cin * plane + 48; t++) pad[t] = 0;
	// wq [cout/16][cin][9][16]: each tap's 16 channels' weights side by side.
	for (long g = 0; g < cout / 16; g++)
		for (long ci = 0; ci < cin; ci++)
			for (int t = 0; t < 9; t++)
				for (int l = 0; l < 16; l++) wq[((g * cin + ci) * 9 + t) * 16 + l] = w[((g * 16 + l) * cin + ci) * 9 + t];
	// Each position's place in a padded plane (past hw: the first's, read
	// and not stored).
	for (long p = 0; p < blocks * LATENT_CL_P; p++) off[p] = p < hw ? p / wd * 16 + p % wd : 0;
	const __m256 zero = _mm256_setzero_ps();
	const __m256i one = _mm256_set1_epi32(1), two = _mm256_set1_epi32(2), four = _mm256_set1_epi32(4);
	for (long s = 0; s < n; s++) {
		for (long ci = 0; ci < cin; ci++)
			for (long r = 0; r < h; r++) latent_copy8(pad + ci * plane + (r + 1) * 16 + 1, x + ((s * cin + ci) * h + r) * wd, wd);
		for (long g = 0; g < cout / 16; g++) {
			for (long b = 0; b < blocks; b++) {
				const long *o = off + b * LATENT_CL_P;
				__m256 a[LATENT_CL_P][2];
				_Pragma("GCC unroll 5") for (int j = 0; j < LATENT_CL_P; j++) a[j][0] = a[j][1] = zero;
				const float *q[LATENT_CL_P];
				_Pragma("GCC unroll 5") for (int j = 0; j < LATENT_CL_P; j++) q[j] = pad + o[j];
				const float *wc = wq + g * cin * 9 * 16;
				for (long ci = 0; ci < cin; ci++, wc += 9 * 16) {
					_Pragma("GCC unroll 3") for (int ky = 0; ky < 3; ky++) {
						_Pragma("GCC unroll 3") for (int kx = 0; kx < 3; kx++) {
							const __m256 w0 = _mm256_load_ps(wc + (ky * 3 + kx) * 16), w1 = _mm256_load_ps(wc + (ky * 3 + kx) * 16 + 8);
							_Pragma("GCC unroll 5") for (int j = 0; j < LATENT_CL_P; j++) {
								const __m256 v = _mm256_broadcast_ss(q[j] + ky * 16 + kx);
								a[j][0] = _mm256_fmadd_ps(v, w0, a[j][0]);
								a[j][1] = _mm256_fmadd_ps(v, w1, a[j][1]);
							}
						}
					}
					_Pragma("GCC unroll 5") for (int j = 0; j < LATENT_CL_P; j++) q[j] += plane;
				}
				_Pragma("GCC unroll 5") for (int j = 0; j < LATENT_CL_P; j++) {
					const long p = b * LATENT_CL_P + j;
					if (p < hw) {
						_mm256_store_ps(cl + p * cout + g * 16, a[j][0]);
						_mm256_store_ps(cl + p * cout + g * 16 + 8, a[j][1]);
					}
				}
			}
		}
		for (long q = 0; q < phw; q++) {
			const long p = q / pw * 2 * wd + q % pw * 2; // the window's first place
			for (long c = 0; c < cout; c += 8) {
				const __m256 bv = _mm256_loadu_ps(bias + c);
				__m256 v[4];
				const long at[4] = {p, p + 1, p + wd, p + wd + 1};
				_Pragma("GCC unroll 4") for (int k = 0; k < 4; k++) {
					const __m256 z = _mm256_add_ps(_mm256_load_ps(cl + at[k] * cout + c), bv);
					v[k] = _mm256_and_ps(_mm256_cmp_ps(z, zero, _CMP_NLE_UQ), z);
				}
				const __m256 m0 = latent_relumax8(v[0], v[1]), m1 = latent_relumax8(v[2], v[3]), m = latent_relumax8(m0, m1);
				const __m256i s0 = _mm256_and_si256(_mm256_castps_si256(_mm256_cmp_ps(v[1], v[0], _CMP_GT_OQ)), one);
				const __m256i s1 = _mm256_add_epi32(two, _mm256_and_si256(_mm256_castps_si256(_mm256_cmp_ps(v[3], v[2], _CMP_GT_OQ)), one));
				__m256i code = _mm256_blendv_epi8(s0, s1, _mm256_castps_si256(_mm256_cmp_ps(m1, m0, _CMP_GT_OQ)));
				code = _mm256_add_epi32(code, _mm256_and_si256(_mm256_castps_si256(_mm256_cmp_ps(m, zero, _CMP_NLE_UQ)), four));
				_mm256_store_ps(pcl + q * cout + c, m);
				const __m256i pick = _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
					0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
				const __m256i bytes = _mm256_shuffle_epi8(code, pick);
				const uint32_t lo = (uint32_t)_mm_cvtsi128_si32(_mm256_castsi256_si128(bytes)),
					       hi = (uint32_t)_mm_cvtsi128_si32(_mm256_extracti128_si256(bytes, 1));
				__builtin_memcpy(ccl + q * cout + c, &lo, 4);
				__builtin_memcpy(ccl + q * cout + c + 4, &hi, 4);
			}
		}
		// Out to [cout, ph, pw]: the channels first.
		float *ps = pooled + s * cout * phw;
		for (long c = 0; c < cout; c++)
			for (long q = 0; q < phw; q++) ps[c * phw + q] = pcl[q * cout + c];
		if (where) {
			uint8_t *ws = where + s * cout * phw;
			for (long c = 0; c < cout; c++)
				for (long q = 0; q < phw; q++) ws[c * phw + q] = ccl[q * cout + c];
		}
	}
}

// latent_conv3x3_pool_cl_fits says whether latent_conv3x3_pool_cl_avx2
// takes a layer (its scratch on the stack included).
static int latent_conv3x3_pool_cl_fits(long cin, long cout, long h, long wd) {
	return cin >= 2 && cout >= 16 && cout % 16 == 0 && wd <= 14 && h % 2 == 0 && wd % 2 == 0 && h * wd * cout <= LATENT_CONV_MAX &&
		cout * cin * 9 <= LATENT_CONV_MAX && cin * (h + 2) * 16 + 48 <= LATENT_CONV_MAX && h * wd <= LATENT_CONV_MAX / 16;
}

// Each form a function of its own, so that the compiler allocates each
// one's registers alone.
static void latent_conv3x3_avx2(float *y, const float *x, const float *w, long n, long cin, long cout, long h, long wd,
	const float *bias, float *pooled, uint8_t *where) {
	if (!y && bias && pooled && latent_conv3x3_pool_cl && latent_conv3x3_pool_cl_fits(cin, cout, h, wd))
		latent_conv3x3_pool_cl_avx2(x, w, n, cin, cout, h, wd, bias, pooled, where);
	else if (wd <= 14) latent_conv3x3_avx2_14(y, x, w, n, cin, cout, h, wd, bias, pooled, where);
	else latent_conv3x3_avx2_30(y, x, w, n, cin, cout, h, wd, bias, pooled, where);
}

static void latent_conv3x3_width(int width, float *y, const float *x, const float *w, long n, long cin, long cout, long h, long wd,
	const float *bias, float *pooled, uint8_t *where) {
	if (width == 16) latent_conv3x3(y, x, w, n, cin, cout, h, wd, bias, pooled, where);
	else latent_conv3x3_avx2(y, x, w, n, cin, cout, h, wd, bias, pooled, where);
}

// latent_conv3x3_grad_w_ref is latent_conv3x3_grad_w's scalar reference:
// the weight gradient of latent_conv3x3_ref over n samples, for input
// channels [ci0, ci1) of dw [cout, cin, 3, 3], from x [n, cin, h, wd] and
// dzt [n, h·wd, cout], the output gradient with its channels last. Each
// value is the sum, from +0 and in order, of a sum for each sample s,
// which starts at +0 and adds dz[s, co, r, c] · x[s, ci, r+ky-1, c+kx-1]
// (0 outside x) for each row r and column c, in that order, one fused
// multiply-add (fmaf) a term. (A sum for each sample keeps the rounding
// error near that of a product's blocked sums: summing all n·h·wd terms
// in one run had ten times the error.)
static void latent_conv3x3_grad_w_ref(float *dw, const float *x, const float *dzt, long n, long cin, long cout, long h, long wd, long ci0, long ci1) {
	for (long co = 0; co < cout; co++) {
		for (long ci = ci0; ci < ci1; ci++) {
			for (long t = 0; t < 9; t++) {
				const long ky = t / 3, kx = t % 3;
				float total = 0;
				for (long s = 0; s < n; s++) {
					float p = 0;
					for (long r = 0; r < h; r++) {
						for (long c = 0; c < wd; c++) {
							long iy = r + ky - 1, ix = c + kx - 1;
							float v = iy >= 0 && iy < h && ix >= 0 && ix < wd ? x[((s * cin + ci) * h + iy) * wd + ix] : 0;
							p = fmaf(dzt[((s * h + r) * wd + c) * cout + co], v, p);
						}
					}
					total += p;
				}
				dw[(co * cin + ci) * 9 + t] = total;
			}
		}
	}
}

// latent_conv3x3_grad_w_body is latent_conv3x3_grad_w_ref with AVX-512, the
// same bits, for cout a multiple of 16·NC: the output channels are the
// lanes of NC registers, so a block of one input channel's 9 weights ×
// 16·NC output channels is 9·NC registers of a sample's sums. For each
// position of the output, in order, each term is one fused multiply-add
// of a row of dzt (the position's gradients, all channels) and a
// broadcast value of a zero-padded copy of the input plane; the sample's
// sums are then added to the totals in acc [ci1−ci0, 9, cout]. pad
// [ci1−ci0, h+2, wd+2] holds a sample's planes.
__attribute__((target("avx512f"), always_inline))
static inline void latent_conv3x3_grad_w_body(float *dw, const float *x, const float *dzt, long n, long cin, long cout, long h, long wd,
	long ci0, long ci1, float *acc, float *pad, const int NC) {
	const long W2 = wd + 2, P = (h + 2) * W2, nci = ci1 - ci0;
	for (long t = 0; t < nci * P; t++) pad[t] = 0;
	for (long t = 0; t < nci * 9 * cout; t++) acc[t] = 0;
	for (long s = 0; s < n; s++) {
		for (long ci = 0; ci < nci; ci++) {
			for (long r = 0; r < h; r++) {
				float *dst = pad + ci * P + (r + 1) * W2 + 1;
				const float *src = x + ((s * cin + ci0 + ci) * h + r) * wd;
				for (long c = 0; c < wd; c++) dst[c] = src[c];
			}
		}
		const float *ds = dzt + s * h * wd * cout;
		for (long ci = 0; ci < nci; ci++) {
			for (long cb = 0; cb < cout; cb += 16 * NC) {
				float *ab = acc + ci * 9 * cout + cb;
				__m512 a[9][2]; // fixed sizes: a variable-length array would live on the stack
				_Pragma("GCC unroll 9") for (int t = 0; t < 9; t++) {
					_Pragma("GCC unroll 2") for (int u = 0; u < NC; u++) a[t][u] = _mm512_setzero_ps();
				}
				for (long r = 0; r < h; r++) {
					const float *x0 = pad + ci * P + r * W2;
					const float *d = ds + r * wd * cout + cb;
					for (long c = 0; c < wd; c++) {
						__m512 dv[2];
						_Pragma("GCC unroll 2") for (int u = 0; u < NC; u++) dv[u] = _mm512_loadu_ps(d + c * cout + 16 * u);
						// Hidden from the compiler, which would otherwise keep
						// the values that the next position shares in registers
						// and broadcast them with shuffles, on the port of the
						// second FMA unit, instead of loads.
						const float *xc = x0 + c;
						__asm__("" : "+r"(xc));
						_Pragma("GCC unroll 3") for (int ky = 0; ky < 3; ky++) {
							_Pragma("GCC unroll 3") for (int kx = 0; kx < 3; kx++) {
								const __m512 xb = _mm512_set1_ps(xc[ky * W2 + kx]);
								_Pragma("GCC unroll 2") for (int u = 0; u < NC; u++) a[ky * 3 + kx][u] = _mm512_fmadd_ps(dv[u], xb, a[ky * 3 + kx][u]);
							}
						}
					}
				}
				_Pragma("GCC unroll 9") for (int t = 0; t < 9; t++) {
					_Pragma("GCC unroll 2") for (int u = 0; u < NC; u++) {
						float *at = ab + t * cout + 16 * u;
						_mm512_storeu_ps(at, _mm512_add_ps(_mm512_loadu_ps(at), a[t][u]));
					}
				}
			}
		}
	}
	for (long ci = 0; ci < nci; ci++) {
		for (long t = 0; t < 9; t++) {
			for (long co = 0; co < cout; co++) dw[(co * cin + ci0 + ci) * 9 + t] = acc[(ci * 9 + t) * cout + co];
		}
	}
}

// latent_conv3x3_grad_w is latent_conv3x3_grad_w_body with blocks of 32
// output channels where cout is a multiple of 32, else of 16; scratch
// holds acc, then pad.
__attribute__((target("avx512f")))
static void latent_conv3x3_grad_w(float *dw, const float *x, const float *dzt, long n, long cin, long cout, long h, long wd,
	long ci0, long ci1, float *scratch) {
	float *pad = scratch + (ci1 - ci0) * 9 * cout;
	if (cout % 32 == 0) latent_conv3x3_grad_w_body(dw, x, dzt, n, cin, cout, h, wd, ci0, ci1, scratch, pad, 2);
	else latent_conv3x3_grad_w_body(dw, x, dzt, n, cin, cout, h, wd, ci0, ci1, scratch, pad, 1);
}

// latent_conv3x3_grad_w_avx2 is latent_conv3x3_grad_w with AVX2 and FMA,
// the same bits: blocks of 8 output channels, the lanes of one register,
// so a block of one input channel's 9 weights is 9 registers of a sample's
// sums; each position's term is one fused multiply-add of a row of dzt
// and a broadcast value of the zero-padded input plane, in the same order.
// scratch holds acc [ci1−ci0, 9, cout], then pad [ci1−ci0, h+2, wd+2].
__attribute__((target("avx2,fma")))
static void latent_conv3x3_grad_w_avx2(float *dw, const float *x, const float *dzt, long n, long cin, long cout, long h, long wd,
	long ci0, long ci1, float *scratch) {
	const long W2 = wd + 2, P = (h + 2) * W2, nci = ci1 - ci0;
	float *acc = scratch, *pad = scratch + nci * 9 * cout;
	for (long t = 0; t < nci * P; t++) pad[t] = 0;
	for (long t = 0; t < nci * 9 * cout; t++) acc[t] = 0;
	for (long s = 0; s < n; s++) {
		for (long ci = 0; ci < nci; ci++) {
			for (long r = 0; r < h; r++) {
				float *dst = pad + ci * P + (r + 1) * W2 + 1;
				const float *src = x + ((s * cin + ci0 + ci) * h + r) * wd;
				for (long c = 0; c < wd; c++) dst[c] = src[c];
			}
		}
		const float *ds = dzt + s * h * wd * cout;
		for (long ci = 0; ci < nci; ci++) {
			for (long cb = 0; cb < cout; cb += 8) {
				float *ab = acc + ci * 9 * cout + cb;
				__m256 a[9];
				_Pragma("GCC unroll 9") for (int t = 0; t < 9; t++) a[t] = _mm256_setzero_ps();
				for (long r = 0; r < h; r++) {
					const float *x0 = pad + ci * P + r * W2;
					const float *d = ds + r * wd * cout + cb;
					for (long c = 0; c < wd; c++) {
						const __m256 dv = _mm256_loadu_ps(d + c * cout);
						const float *xc = x0 + c;
						__asm__("" : "+r"(xc)); // broadcasts from memory, as latent_conv3x3_grad_w_body's
						_Pragma("GCC unroll 3") for (int ky = 0; ky < 3; ky++) {
							_Pragma("GCC unroll 3") for (int kx = 0; kx < 3; kx++) {
								a[ky * 3 + kx] = _mm256_fmadd_ps(dv, _mm256_broadcast_ss(xc + ky * W2 + kx), a[ky * 3 + kx]);
							}
						}
					}
				}
				_Pragma("GCC unroll 9") for (int t = 0; t < 9; t++) {
					float *at = ab + t * cout;
					_mm256_storeu_ps(at, _mm256_add_ps(_mm256_loadu_ps(at), a[t]));
				}
			}
		}
	}
	for (long ci = 0; ci < nci; ci++) {
		for (long t = 0; t < 9; t++) {
			for (long co = 0; co < cout; co++) dw[(co * cin + ci0 + ci) * 9 + t] = acc[(ci * 9 + t) * cout + co];
		}
	}
}

static void latent_conv3x3_grad_w_width(int width, float *dw, const float *x, const float *dzt, long n, long cin, long cout, long h, long wd,
	long ci0, long ci1, float *scratch) {
	if (width == 16) latent_conv3x3_grad_w(dw, x, dzt, n, cin, cout, h, wd, ci0, ci1, scratch);
	else latent_conv3x3_grad_w_avx2(dw, x, dzt, n, cin, cout, h, wd, ci0, ci1, scratch);
}

// latent_sgemm: C = A·op(B) for float32, row-major: A m×k (lda), op(B) k×n,
// B itself k×n (ldb) or, with transB, n×k (ldb); C m×n (ldc), overwritten.
// Each value of C is one chain of fused multiply-adds over p = 0..k-1 in
// order, from zero: the bits of latent_sgemm_ref on every CPU with
// AVX-512. It takes C 64 columns at a time and the sum LATENT_KC terms at a
// time: each block of op(B) (LATENT_KC×64) is copied (with transB,
// transposed) into a contiguous panel that stays in L1, then every run of
// 6 rows of A (then 4, then 1) goes through it with C's 6×64 values in 24
// registers, loaded back from C to carry the chain on after the first
// block: storing a sum and loading it again leaves its bits alone.
#define LATENT_KC 128

static void latent_sgemm_ref(int transB, long m, long n, long k, const float *a, long lda, const float *b, long ldb, float *c, long ldc) {
	for (long i = 0; i < m; i++) {
		for (long j = 0; j < n; j++) {
			float s = 0;
			for (long p = 0; p < k; p++) s = fmaf(a[i * lda + p], transB ? b[j * ldb + p] : b[p * ldb + j], s);
			c[i * ldc + j] = s;
		}
	}
}

#define LATENT_GEMM_ROW(r, V) \
	{ \
		__m512 x = _mm512_set1_ps(ap[r * lda + p]); \
		c##r##0 = _mm512_fmadd_ps(x, b0, c##r##0); \
		if (V > 1) c##r##1 = _mm512_fmadd_ps(x, b1, c##r##1); \
		if (V > 2) c##r##2 = _mm512_fmadd_ps(x, b2, c##r##2); \
		if (V > 3) c##r##3 = _mm512_fmadd_ps(x, b3, c##r##3); \
	}
#define LATENT_GEMM_INIT(r) \
	__m512 c##r##0, c##r##1, c##r##2, c##r##3; \
	if (first) { \
		c##r##0 = c##r##1 = c##r##2 = c##r##3 = _mm512_setzero_ps(); \
	} else { \
		c##r##0 = _mm512_maskz_loadu_ps(k0, cp + r * ldc); \
		c##r##1 = _mm512_maskz_loadu_ps(k1, cp + r * ldc + 16); \
		c##r##2 = _mm512_maskz_loadu_ps(k2, cp + r * ldc + 32); \
		c##r##3 = _mm512_maskz_loadu_ps(k3, cp + r * ldc + 48); \
	}
#define LATENT_GEMM_STORE(r) \
	_mm512_mask_storeu_ps(cp + r * ldc, k0, c##r##0); \
	_mm512_mask_storeu_ps(cp + r * ldc + 16, k1, c##r##1); \
	_mm512_mask_storeu_ps(cp + r * ldc + 32, k2, c##r##2); \
	_mm512_mask_storeu_ps(cp + r * ldc + 48, k3, c##r##3);
#define LATENT_GEMM_R6(V) LATENT_GEMM_ROW(0, V) LATENT_GEMM_ROW(1, V) LATENT_GEMM_ROW(2, V) LATENT_GEMM_ROW(3, V) LATENT_GEMM_ROW(4, V) LATENT_GEMM_ROW(5, V)
#define LATENT_GEMM_R4(V) LATENT_GEMM_ROW(0, V) LATENT_GEMM_ROW(1, V) LATENT_GEMM_ROW(2, V) LATENT_GEMM_ROW(3, V)
#define LATENT_GEMM_R1(V) LATENT_GEMM_ROW(0, V)
#define LATENT_GEMM_INIT6 LATENT_GEMM_INIT(0) LATENT_GEMM_INIT(1) LATENT_GEMM_INIT(2) LATENT_GEMM_INIT(3) LATENT_GEMM_INIT(4) LATENT_GEMM_INIT(5)
#define LATENT_GEMM_INIT4 LATENT_GEMM_INIT(0) LATENT_GEMM_INIT(1) LATENT_GEMM_INIT(2) LATENT_GEMM_INIT(3)
#define LATENT_GEMM_INIT1 LATENT_GEMM_INIT(0)
#define LATENT_GEMM_STORE6 LATENT_GEMM_STORE(0) LATENT_GEMM_STORE(1) LATENT_GEMM_STORE(2) LATENT_GEMM_STORE(3) LATENT_GEMM_STORE(4) LATENT_GEMM_STORE(5)
#define LATENT_GEMM_STORE4 LATENT_GEMM_STORE(0) LATENT_GEMM_STORE(1) LATENT_GEMM_STORE(2) LATENT_GEMM_STORE(3)
#define LATENT_GEMM_STORE1 LATENT_GEMM_STORE(0)

// LATENT_GEMM defines latent_gemm<R>_<V>, which adds the products of R rows
// of A (ap, kb values from the block's first) and V×16 columns of the
// panel pk (kb rows of 64) to nj ≤ 16·V columns of R rows of C (cp), or
// sets them to the products where first. V < 4 is for a panel's last
// columns: a narrower kernel does not multiply the zeros past them.
#define LATENT_GEMM(R, V) \
__attribute__((target("avx512f"))) \
static void latent_gemm##R##_##V(long kb, const float *ap, long lda, const float *pk, float *cp, long ldc, long nj, int first) { \
	__mmask16 k0 = latent_tail(nj), k1 = latent_tail(nj - 16), k2 = latent_tail(nj - 32), k3 = latent_tail(nj - 48); \
	LATENT_GEMM_INIT##R \
	const float *bp = pk; \
	for (long p = 0; p < kb; p++, bp += 64) { \
		__m512 b0 = _mm512_load_ps(bp), b1 = b0, b2 = b0, b3 = b0; \
		if (V > 1) b1 = _mm512_load_ps(bp + 16); \
		if (V > 2) b2 = _mm512_load_ps(bp + 32); \
		if (V > 3) b3 = _mm512_load_ps(bp + 48); \
		LATENT_GEMM_R##R(V) \
	} \
	LATENT_GEMM_STORE##R \
}
LATENT_GEMM(6, 4) LATENT_GEMM(6, 3) LATENT_GEMM(6, 2) LATENT_GEMM(6, 1)
LATENT_GEMM(4, 4) LATENT_GEMM(4, 3) LATENT_GEMM(4, 2) LATENT_GEMM(4, 1)
LATENT_GEMM(1, 4) LATENT_GEMM(1, 3) LATENT_GEMM(1, 2) LATENT_GEMM(1, 1)

typedef void (*latent_gemm_fn)(long, const float *, long, const float *, float *, long, long, int);
static const latent_gemm_fn latent_gemm6[4] = {latent_gemm6_1, latent_gemm6_2, latent_gemm6_3, latent_gemm6_4};
static const latent_gemm_fn latent_gemm4[4] = {latent_gemm4_1, latent_gemm4_2, latent_gemm4_3, latent_gemm4_4};
static const latent_gemm_fn latent_gemm1[4] = {latent_gemm1_1, latent_gemm1_2, latent_gemm1_3, latent_gemm1_4};

// latent_gemm_pack copies the block of op(B) of rows [p0, p0+kb) and
// columns [j0, j0+nj) into pk, kb rows of 64 values, the columns past nj
// zero.
__attribute__((target("avx512f")))
static void latent_gemm_pack(int transB, const float *b, long ldb, long p0, long kb, long j0, long nj, float *pk) {
	if (!transB) {
		__mmask16 k0 = latent_tail(nj), k1 = latent_tail(nj - 16), k2 = latent_tail(nj - 32), k3 = latent_tail(nj - 48);
		for (long p = 0; p < kb; p++) {
			const float *s = b + (p0 + p) * ldb + j0;
			float *d = pk + p * 64;
			_mm512_store_ps(d, _mm512_maskz_loadu_ps(k0, s));
			_mm512_store_ps(d + 16, _mm512_maskz_loadu_ps(k1, s + 16));
			_mm512_store_ps(d + 32, _mm512_maskz_loadu_ps(k2, s + 32));
			_mm512_store_ps(d + 48, _mm512_maskz_loadu_ps(k3, s + 48));
		}
		return;
	}
	// pk[p][jj] = B[j0+jj][p0+p]: 8×8 blocks, then the edges one at a time.
	long j = 0;
	for (; j + 8 <= nj; j += 8) {
		long p = 0;
		for (; p + 8 <= kb; p += 8) latent_tr8x8(b + (j0 + j) * ldb + p0 + p, ldb, pk + p * 64 + j, 64);
		for (; p < kb; p++)
			for (long i = 0; i < 8; i++) pk[p * 64 + j + i] = b[(j0 + j + i) * ldb + p0 + p];
	}
	for (; j < nj; j++)
		for (long p = 0; p < kb; p++) pk[p * 64 + j] = b[(j0 + j) * ldb + p0 + p];
	for (long p = 0; p < kb; p++)
		for (long jj = nj; jj < 64; jj++) pk[p * 64 + jj] = 0;
}

__attribute__((target("avx512f")))
static void latent_sgemm(int transB, long m, long n, long k, const float *a, long lda, const float *b, long ldb, float *c, long ldc) {
	float pk[LATENT_KC * 64] __attribute__((aligned(64)));
	if (k == 0) {
		for (long i = 0; i < m; i++)
			for (long j = 0; j < n; j++) c[i * ldc + j] = 0;
		return;
	}
	for (long j0 = 0; j0 < n; j0 += 64) {
		long nj = n - j0 < 64 ? n - j0 : 64;
		for (long p0 = 0; p0 < k; p0 += LATENT_KC) {
			long kb = k - p0 < LATENT_KC ? k - p0 : LATENT_KC;
			latent_gemm_pack(transB, b, ldb, p0, kb, j0, nj, pk);
			long i = 0, v = (nj + 15) / 16 - 1;
			for (; i + 6 <= m; i += 6) latent_gemm6[v](kb, a + i * lda + p0, lda, pk, c + i * ldc + j0, ldc, nj, p0 == 0);
			for (; i + 4 <= m; i += 4) latent_gemm4[v](kb, a + i * lda + p0, lda, pk, c + i * ldc + j0, ldc, nj, p0 == 0);
			for (; i < m; i++) latent_gemm1[v](kb, a + i * lda + p0, lda, pk, c + i * ldc + j0, ldc, nj, p0 == 0);
		}
	}
}

// latent_conv3x3_pool_grad computes, for samples [s0, s1) of a 3×3 "same"
// convolution of one input channel followed by a 2×2 max pooling (with
// relu, of the ReLU between them), each sample's weight- and bias-gradient
// sums from the pooling's gradient dy and where it recorded its maxima:
// part [s1−s0, 10, cout], rows 0–8 a sample's sums of dz·x for each of the
// 9 weights (those of latent_conv3x3_pool_grad_ref), row 9 its sums of dz
// (latent_channel_sums'). The sample's dz, which latent_maxpool2x2_grad
// writes, stays in the cache (scratch) rather than going out to memory for
// a whole batch. Each weight's sum is 16 chains of fused multiply-adds,
// chain l over the positions p ≡ l (mod 16) in order, the 16 lanes of a
// register of a product of dz's row with a row of shifted, masked loads of
// the zero-padded input plane (the im2col column, never written), then
// added up in adjacent pairs ((c0+c1)+(c2+c3))+…: the sums of OpenBLAS's
// SkylakeX kernels for the product of dz by the columns (for 100 positions
// or more). scratch: Conv3x3PoolGradScratch(cout, h, wd) values.
__attribute__((target("avx512f,avx512bw,avx512vl")))
static void latent_conv3x3_pool_grad(float *part, const float *x, const float *dy, const uint8_t *where, int relu,
		long s0, long s1, long cout, long h, long wd, float *scratch) {
	const long oh = h / 2, ow = wd / 2, ohw = oh * ow, hw = h * wd, R = (hw + 15) / 16;
	// The plane at xz: a row of zeros above and below, 16 values of slack
	// at both ends.
	float *xz = scratch + 16 + wd, *dz = scratch + 2 * wd + hw + 32;
	for (long i = 0; i < 2 * wd + hw + 32; i++) scratch[i] = 0;
	// For each row of 16 positions, the lanes whose column has a left
	// neighbour, and those with a right one (and p < hw).
	uint16_t *masks = (uint16_t *)(dz + cout * hw);
	for (long r = 0; r < R; r++) {
		__mmask16 left = 0, right = 0;
		for (long l = 0; l < 16 && r * 16 + l < hw; l++) {
			const long j = (r * 16 + l) % wd;
			left |= (__mmask16)((j != 0) << l);
			right |= (__mmask16)((j != wd - 1) << l);
		}
		masks[2 * r] = left;
		masks[2 * r + 1] = right;
	}
	for (long s = s0; s < s1; s++) {
		__builtin_memcpy(xz, x + s * hw, hw * sizeof(float));
		latent_maxpool2x2_grad(dz, cout, wd, hw, oh, ow, dy + s * cout * ohw, where + s * cout * ohw, relu);
		float *ps = part + (s - s0) * 10 * cout;
		for (long c = 0; c < cout; c++) ps[9 * cout + c] = 0;
		latent_channel_sums(ps + 9 * cout, dz, cout, hw);
		for (long c = 0; c < cout; c += 2) {
			const int two = c + 1 < cout;
			const float *d0 = dz + c * hw, *d1 = two ? d0 + hw : d0;
			__m512 a[18];
			_Pragma("GCC unroll 18") for (int t = 0; t < 18; t++) a[t] = _mm512_setzero_ps();
			for (long r = 0; r < R; r++) {
				const long p = r * 16;
				const __mmask16 k = latent_tail(hw - p), left = masks[2 * r], right = masks[2 * r + 1];
				const __m512 z0 = _mm512_maskz_loadu_ps(k, d0 + p), z1 = _mm512_maskz_loadu_ps(k, d1 + p);
				_Pragma("GCC unroll 3") for (int ky = 0; ky < 3; ky++) {
					const float *row = xz + p + (ky - 1) * wd;
					const __m512 xl = _mm512_maskz_loadu_ps(left, row - 1), xm = _mm512_maskz_loadu_ps(k, row),
						     xr = _mm512_maskz_loadu_ps(right, row + 1);
					a[ky * 3] = _mm512_fmadd_ps(z0, xl, a[ky * 3]);
					a[ky * 3 + 1] = _mm512_fmadd_ps(z0, xm, a[ky * 3 + 1]);
					a[ky * 3 + 2] = _mm512_fmadd_ps(z0, xr, a[ky * 3 + 2]);
					a[9 + ky * 3] = _mm512_fmadd_ps(z1, xl, a[9 + ky * 3]);
					a[9 + ky * 3 + 1] = _mm512_fmadd_ps(z1, xm, a[9 + ky * 3 + 1]);
					a[9 + ky * 3 + 2] = _mm512_fmadd_ps(z1, xr, a[9 + ky * 3 + 2]);
				}
			}
			_Pragma("GCC unroll 18") for (int t = 0; t < 18; t++) {
				__m512 v = a[t];
				v = _mm512_add_ps(v, _mm512_permute_ps(v, 0xB1));        // lanes 2q: v[2q] + v[2q+1]
				v = _mm512_add_ps(v, _mm512_permute_ps(v, 0x4E));        // lanes 4q: the pairs' pairs
				v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, 0xB1)); // lanes 8q
				v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, 0x4E)); // lane 0: all 16
				if (t < 9 || two) ps[(t % 9) * cout + c + t / 9] = _mm512_cvtss_f32(v);
			}
		}
	}
}

// latent_conv3x3_pool_grad_avx2 is latent_conv3x3_pool_grad with AVX2 and
// FMA, the same bits: each weight's 16 chains are two registers' lanes,
// lanes 0–7 of each 16 positions in one pass and 8–15 in another, each
// term a fused multiply-add of dz's 8 values and the same 8 of the
// weight's im2col column, which the pass reads from xcol (9 columns of
// 16·R values, made once a sample from a zero-padded copy of the plane);
// each pass's 8 chains are then added in adjacent pairs, and the two
// passes' sums added, the order of the 16 lanes' pairs. scratch holds dz
// [cout, h·wd], pad [(h+2)·(wd+2)] and xcol.
__attribute__((target("avx2,fma")))
static void latent_conv3x3_pool_grad_avx2(float *part, const float *x, const float *dy, const uint8_t *where, int relu,
		long s0, long s1, long cout, long h, long wd, float *scratch) {
	const long oh = h / 2, ow = wd / 2, ohw = oh * ow, hw = h * wd, R = (hw + 15) / 16, W2 = wd + 2;
	float *dz = scratch, *pad = dz + cout * hw, *xcol = pad + (h + 2) * W2;
	for (long i = 0; i < (h + 2) * W2; i++) pad[i] = 0;
	for (long i = 0; i < 9 * 16 * R; i++) xcol[i] = 0; // the positions past hw stay zero
	for (long s = s0; s < s1; s++) {
		// Row copies in registers: as element loops, which the compiler
		// cannot prove apart (pad and xcol share scratch), they ran one
		// float a store and took half the kernel's time; as memcpy, a
		// call a row.
		for (long r = 0; r < h; r++) latent_copy8(pad + (r + 1) * W2 + 1, x + s * hw + r * wd, wd);
		for (int t = 0; t < 9; t++) {
			const long ky = t / 3, kx = t % 3;
			for (long r = 0; r < h; r++) latent_copy8(xcol + t * 16 * R + r * wd, pad + (r + ky) * W2 + kx, wd);
		}
		latent_maxpool2x2_grad8(dz, cout, wd, hw, oh, ow, dy + s * cout * ohw, where + s * cout * ohw, relu);
		float *ps = part + (s - s0) * 10 * cout;
		for (long c = 0; c < cout; c++) ps[9 * cout + c] = 0;
		latent_channel_sums(ps + 9 * cout, dz, cout, hw);
		for (long c = 0; c < cout; c++) {
			const float *d0 = dz + c * hw;
			float half[2][9];
			for (int hf = 0; hf < 2; hf++) {
				__m256 a[9];
				_Pragma("GCC unroll 9") for (int t = 0; t < 9; t++) a[t] = _mm256_setzero_ps();
				// Whole registers of dz but for the last, which may run
				// past the plane.
				const long full = (hw - 8 * hf) / 16;
				for (long r = 0; r < R; r++) {
					const long p = 16 * r + 8 * hf;
					const __m256 z = r < full ? _mm256_loadu_ps(d0 + p) : _mm256_maskload_ps(d0 + p, latent_mask8(hw - p));
					_Pragma("GCC unroll 9") for (int t = 0; t < 9; t++) a[t] = _mm256_fmadd_ps(z, _mm256_loadu_ps(xcol + t * 16 * R + p), a[t]);
				}
				// ((l0+l1)+(l2+l3))+((l4+l5)+(l6+l7)) in registers: a
				// copy through memory kept the sums there all the loop.
				_Pragma("GCC unroll 9") for (int t = 0; t < 9; t++) {
					__m256 v = _mm256_add_ps(a[t], _mm256_permute_ps(a[t], 0xB1)); // lanes 2q: l[2q] + l[2q+1]
					v = _mm256_add_ps(v, _mm256_permute_ps(v, 0x4E));             // lanes 0 and 4: the pairs' pairs
					half[hf][t] = _mm_cvtss_f32(_mm_add_ss(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1)));
				}
			}
			for (int t = 0; t < 9; t++) ps[t * cout + c] = half[0][t] + half[1][t];
		}
	}
}

static void latent_conv3x3_pool_grad_width(int width, float *part, const float *x, const float *dy, const uint8_t *where, int relu,
		long s0, long s1, long cout, long h, long wd, float *scratch) {
	if (width == 16) latent_conv3x3_pool_grad(part, x, dy, where, relu, s0, s1, cout, h, wd, scratch);
	else latent_conv3x3_pool_grad_avx2(part, x, dy, where, relu, s0, s1, cout, h, wd, scratch);
}

// latent_conv3x3_pool_grad_ref sets dw [cout, 9] to the weight gradient of
// a 3×3 "same" convolution of one input channel, x [n, h, wd], from its
// output gradient dz [n, cout, h·wd]: for each sample, each weight's 16
// chains of fmaf (chain l over the positions p ≡ l mod 16, in order, from
// +0) added up in adjacent pairs; the first sample's sums, then each
// other's added.
static void latent_conv3x3_pool_grad_ref(float *dw, const float *x, const float *dz, long n, long cout, long h, long wd) {
	const long hw = h * wd;
	for (long co = 0; co < cout; co++) {
		for (long t = 0; t < 9; t++) {
			const long ky = t / 3, kx = t % 3;
			float total = 0;
			for (long s = 0; s < n; s++) {
				float v[16] = {0};
				for (long p = 0; p < hw; p++) {
					long iy = p / wd + ky - 1, ix = p % wd + kx - 1;
					float xv = iy >= 0 && iy < h && ix >= 0 && ix < wd ? x[s * hw + iy * wd + ix] : 0;
					v[p % 16] = fmaf(dz[(s * cout + co) * hw + p], xv, v[p % 16]);
				}
				for (long w = 16; w > 1; w /= 2) {
					for (long r = 0; r < w / 2; r++) v[r] = v[2 * r] + v[2 * r + 1];
				}
				total = s == 0 ? v[0] : total + v[0];
			}
			dw[co * 9 + t] = total;
		}
	}
}


// latent_tr16x16 transposes the 16×16 matrix in r, a row a register:
// four rounds of swapping the off-diagonal blocks of 8, 4, 2 and 1.
__attribute__((target("avx512f"), always_inline))
static inline void latent_tr16x16(__m512 r[16]) {
	static const int32_t idx[4][2][16] = {
		{{0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23}, {8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31}},
		{{0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27}, {4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31}},
		{{0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29}, {2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31}},
		{{0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30}, {1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31}},
	};
	_Pragma("GCC unroll 4") for (int l = 0; l < 4; l++) {
		const int b = 8 >> l;
		const __m512i lo = _mm512_loadu_si512(idx[l][0]), hi = _mm512_loadu_si512(idx[l][1]);
		_Pragma("GCC unroll 16") for (int i = 0; i < 16; i++) {
			if (i & b) continue;
			const __m512 x = r[i], y = r[i + b];
			r[i] = _mm512_permutex2var_ps(x, lo, y);
			r[i + b] = _mm512_permutex2var_ps(x, hi, y);
		}
	}
}

// latent_planes_to_last copies 16 planes of h×wd (src, planes hw apart)
// into a plane padded by one value all round (rows of wd+2) with the 16
// channels last: dst[q·cs + i] = src[i·hw + p] for the padded index q of
// position p. The padding is left alone.
__attribute__((target("avx512f")))
static void latent_planes_to_last(float *dst, long cs, const float *src, long h, long wd) {
	const long hw = h * wd, W2 = wd + 2;
	for (long p0 = 0; p0 < hw; p0 += 16) {
		const __mmask16 k = latent_tail(hw - p0);
		__m512 r[16];
		_Pragma("GCC unroll 16") for (int i = 0; i < 16; i++) r[i] = _mm512_maskz_loadu_ps(k, src + i * hw + p0);
		latent_tr16x16(r);
		_Pragma("GCC unroll 16") for (int j = 0; j < 16; j++) {
			const long p = p0 + j;
			if (p < hw) _mm512_storeu_ps(dst + (p + 2 * (p / wd) + W2 + 1) * cs, r[j]);
		}
	}
}

// latent_last_to_planes is latent_planes_to_last's way back: dst[i·hw + p]
// = src[q·cs + i] for the 16 channels.
__attribute__((target("avx512f")))
static void latent_last_to_planes(float *dst, const float *src, long cs, long h, long wd) {
	const long hw = h * wd, W2 = wd + 2;
	for (long p0 = 0; p0 < hw; p0 += 16) {
		const __mmask16 k = latent_tail(hw - p0);
		__m512 r[16];
		_Pragma("GCC unroll 16") for (int j = 0; j < 16; j++) {
			const long p = p0 + j;
			r[j] = p < hw ? _mm512_loadu_ps(src + (p + 2 * (p / wd) + W2 + 1) * cs) : _mm512_setzero_ps();
		}
		latent_tr16x16(r);
		_Pragma("GCC unroll 16") for (int i = 0; i < 16; i++) _mm512_mask_storeu_ps(dst + i * hw + p0, k, r[i]);
	}
}

// LATENT_LIST_SLACK is how many entries past the last that
// latent_pool_list (or latent_pool_list8) may write: each array of its list holds oh·ow + that.
#define LATENT_LIST_SLACK 16

// latent_weights_last sets wt [cout, 9, cin] to the weights w [cout, cin,
// 3, 3] with their input channels last, for the sparse input gradients
// (both forms).
static void latent_weights_last(float *wt, const float *w, long cin, long cout) {
	for (long co = 0; co < cout; co++) {
		for (long ci = 0; ci < cin; ci++) {
			for (int t = 0; t < 9; t++) wt[(co * 9 + t) * cin + ci] = w[(co * cin + ci) * 9 + t];
		}
	}
}

// latent_list is a plane's list of places (latent_pool_list): off, lane
// and val, each oh·ow + LATENT_LIST_SLACK entries.
typedef struct {
	int32_t *off, *lane;
	float *val;
} latent_list;

// latent_list_at lays a list for ohw windows out in scratch from at.
static inline latent_list latent_list_at(void *at, long ohw) {
	latent_list l;
	l.off = (int32_t *)at;
	l.lane = l.off + ohw + LATENT_LIST_SLACK;
	l.val = (float *)(l.lane + ohw + LATENT_LIST_SLACK);
	return l;
}

// latent_tap_offsets sets koff[t] to the offset of tap t from its centre
// in a plane padded by one value all round (rows of W2) with c channels
// a place, last.
static inline void latent_tap_offsets(long koff[9], long W2, long c) {
	for (int t = 0; t < 9; t++) koff[t] = ((t / 3 - 1) * W2 + t % 3 - 1) * c;
}

// latent_sparse_w is the scratch of latent_conv3x3_pool_grad_w (either
// form; Conv3x3PoolGradWScratch values) laid out: a sample's padded plane
// with its cin channels last (xt), the totals [co1−co0, 9, cin] (tot),
// then the list; and the taps' offsets in xt.
typedef struct {
	float *xt, *tot;
	latent_list list;
	long koff[9];
} latent_sparse_w;

// latent_sparse_w_start lays out scratch and clears xt (its padding stays
// zero), tot and db's channels [co0, co1).
static inline latent_sparse_w latent_sparse_w_start(float *scratch, float *db, long cin, long h, long wd, long co0, long co1) {
	const long W2 = wd + 2, P = (h + 2) * W2, nco = co1 - co0;
	latent_sparse_w g;
	g.xt = scratch;
	g.tot = g.xt + P * cin;
	g.list = latent_list_at(g.tot + nco * 9 * cin, h / 2 * (wd / 2));
	latent_tap_offsets(g.koff, W2, cin);
	__builtin_memset(g.xt, 0, P * cin * sizeof(float));
	__builtin_memset(g.tot, 0, nco * 9 * cin * sizeof(float));
	for (long co = co0; co < co1; co++) db[co] = 0;
	return g;
}

// latent_sparse_x is the scratch of latent_conv3x3_pool_grad_x (either
// form; Conv3x3PoolGradXScratch values) laid out: the weights [cout, 9,
// cin] (wt), the padded dx with its channels last (dxt), then the list;
// and the taps' offsets in dxt.
typedef struct {
	float *wt, *dxt;
	latent_list list;
	long koff[9];
} latent_sparse_x;

// latent_sparse_x_start lays out scratch and sets wt from w [cout, cin, 3,
// 3].
static inline latent_sparse_x latent_sparse_x_start(float *scratch, const float *w, long cin, long cout, long h, long wd) {
	const long W2 = wd + 2, P = (h + 2) * W2;
	latent_sparse_x g;
	g.wt = scratch;
	g.dxt = g.wt + cout * 9 * cin;
	g.list = latent_list_at(g.dxt + P * cin, h / 2 * (wd / 2));
	latent_tap_offsets(g.koff, W2, cin);
	latent_weights_last(g.wt, w, cin, cout);
	return g;
}

// latent_sum4 is (b0+b1)+(b2+b3), Sum4Go's four partial sums added up.
static inline float latent_sum4(__m128 b) {
	float bs[4];
	_mm_storeu_ps(bs, b);
	return (bs[0] + bs[1]) + (bs[2] + bs[3]);
}

// latent_pool_list_c is latent_pool_list's list for rows of more than 8
// windows, with AVX-512 or AVX2 (latent_pool_list8): a window at a time, each
// written and counted only where it gets a value (no branch on the code,
// which would be mispredicted half the time). It may write one entry past
// the last.
static long latent_pool_list_c(const float *dy, const uint8_t *where, long h, long wd, int32_t *off, int32_t *lane, float *val) {
	const long oh = h / 2, ow = wd / 2, W2 = wd + 2, hw4 = h * wd / 4 * 4;
	long k = 0;
	for (long wy = 0; wy < oh; wy++) {
		for (long a = 0; a < 2; a++) {
			const long r = 2 * wy + a;
			for (long px = 0; px < ow; px++) {
				const int code = where[wy * ow + px];
				const long c = 2 * px + (code & 1), p = r * wd + c;
				off[k] = (int32_t)((r + 1) * W2 + c + 1);
				lane[k] = p < hw4 ? (int32_t)(p & 3) : 0;
				val[k] = dy[wy * ow + px];
				k += (code & 6) == (4 | 2 * a);
			}
		}
	}
	return k;
}

// latent_pack8 holds, for each set of 8 lanes (bit l: lane l), the indices
// of its lanes in order, a nibble each from the lowest: the permutation
// that packs those lanes to the front of a register (latent_pool_list8).
static uint32_t latent_pack8[256];

static void latent_pack8_init(void) {
	for (int m = 0; m < 256; m++) {
		uint32_t v = 0;
		for (int l = 0, k = 0; l < 8; l++) {
			if (m >> l & 1) v |= (uint32_t)l << (4 * k++);
		}
		latent_pack8[m] = v;
	}
}

// latent_pool_list8 is latent_pool_list_c with AVX2 for rows of up to 8
// windows, the same list: a row of windows at a time, the windows that
// give the row a value packed to the front by latent_pack8's permutation
// of their lanes. It may write 8 entries past the last.
__attribute__((target("avx2")))
static long latent_pool_list8(const float *dy, const uint8_t *where, long h, long wd, int32_t *off, int32_t *lane, float *val) {
	const long oh = h / 2, ow = wd / 2, W2 = wd + 2, hw4 = h * wd / 4 * 4;
	if (ow > 8) return latent_pool_list_c(dy, where, h, wd, off, lane, val);
	const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), shifts = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28);
	const __m256i one = _mm256_set1_epi32(1), three = _mm256_set1_epi32(3), six = _mm256_set1_epi32(6), seven = _mm256_set1_epi32(7);
	const __m256i kw = latent_mask8(ow), limit = _mm256_set1_epi32((int)hw4), col0 = _mm256_add_epi32(idx, idx);
	long k = 0;
	for (long wy = 0; wy < oh; wy++) {
		const uint64_t cb = latent_codes8(where + wy * ow, ow, where, where + oh * ow);
		const __m256i code = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)cb));
		const __m256 d = _mm256_maskload_ps(dy + wy * ow, kw);
		const __m256i col = _mm256_add_epi32(col0, _mm256_and_si256(code, one)), rank = _mm256_and_si256(code, six);
		for (long a = 0; a < 2; a++) {
			const long r = 2 * wy + a;
			const __m256i p = _mm256_add_epi32(_mm256_set1_epi32((int)(r * wd)), col);
			const __m256i o = _mm256_add_epi32(_mm256_set1_epi32((int)((r + 1) * W2 + 1)), col);
			const __m256i ln = _mm256_and_si256(_mm256_and_si256(p, three), _mm256_cmpgt_epi32(limit, p));
			const __m256i sel = _mm256_and_si256(_mm256_cmpeq_epi32(rank, _mm256_set1_epi32((int)(4 | 2 * a))), kw);
			const int m = _mm256_movemask_ps(_mm256_castsi256_ps(sel));
			const __m256i perm = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32((int)latent_pack8[m]), shifts), seven);
			_mm256_storeu_si256((__m256i *)(off + k), _mm256_permutevar8x32_epi32(o, perm));
			_mm256_storeu_si256((__m256i *)(lane + k), _mm256_permutevar8x32_epi32(ln, perm));
			_mm256_storeu_ps(val + k, _mm256_permutevar8x32_ps(d, perm));
			k += __builtin_popcount(m);
		}
	}
	return k;
}

// latent_pool_list lists the positions of one plane of a 2×2 max pooling's
// input gradient (stride 2, h and wd even, after a ReLU) that get a value:
// each window's first maximum, where where's bit 2 says that the maximum
// was above zero or NaN; every other position gets +0 (MaxPool2x2GradGo
// with relu). It lists them in row-major order of the plane: off[i] is the
// position's index in the plane padded by one value all round (rows of
// wd+2), lane[i] its lane among Sum4Go's four partial sums (p mod 4, or 0
// past the last multiple of 4) and val[i] its value, the window's
// gradient. It returns how many. For rows of up to 8 windows, a pair of
// rows at a time: lanes 0–7 the windows' maxima in the upper row, lanes
// 8–15 in the lower, compressed in that order.
__attribute__((target("avx512f,avx512bw,avx512vl")))
static long latent_pool_list(const float *dy, const uint8_t *where, long h, long wd, int32_t *off, int32_t *lane, float *val) {
	const long oh = h / 2, ow = wd / 2, W2 = wd + 2, hw4 = h * wd / 4 * 4;
	if (ow > 8) return latent_pool_list_c(dy, where, h, wd, off, lane, val);
	long k = 0;
	const __m512i idx = _mm512_set_epi32(7, 6, 5, 4, 3, 2, 1, 0, 7, 6, 5, 4, 3, 2, 1, 0);
	const __m512i a = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
	const __m512i want = _mm512_add_epi32(_mm512_set1_epi32(4), _mm512_add_epi32(a, a));
	const __m512i six = _mm512_set1_epi32(6), one = _mm512_set1_epi32(1), three = _mm512_set1_epi32(3);
	const __mmask16 kw = (__mmask16)(((1u << ow) - 1) * 0x101u);
	const __mmask8 kb = (__mmask8)((1u << ow) - 1);
	// A lane's column without the maximum's place in the window: 2·px;
	// its row in the upper pair: a.
	const __m512i col0 = _mm512_add_epi32(idx, idx);
	for (long wy = 0; wy < oh; wy++) {
		__m512i c = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(kb, where + wy * ow));
		c = _mm512_permutexvar_epi32(idx, c);
		__m512 d = _mm512_permutexvar_ps(idx, _mm512_maskz_loadu_ps(kb, dy + wy * ow));
		const __mmask16 m = _mm512_mask_cmpeq_epi32_mask(kw, _mm512_and_si512(c, six), want);
		const __m512i r = _mm512_add_epi32(_mm512_set1_epi32(2 * wy), a);
		const __m512i col = _mm512_add_epi32(col0, _mm512_and_si512(c, one));
		const __m512i o = _mm512_add_epi32(_mm512_mullo_epi32(_mm512_add_epi32(r, one), _mm512_set1_epi32(W2)), _mm512_add_epi32(col, one));
		const __m512i p = _mm512_add_epi32(_mm512_mullo_epi32(r, _mm512_set1_epi32(wd)), col);
		const __m512i l = _mm512_maskz_and_epi32(_mm512_cmplt_epi32_mask(p, _mm512_set1_epi32(hw4)), p, three);
		_mm512_storeu_si512(off + k, _mm512_maskz_compress_epi32(m, o));
		_mm512_storeu_si512(lane + k, _mm512_maskz_compress_epi32(m, l));
		_mm512_storeu_ps(val + k, _mm512_maskz_compress_ps(m, d));
		k += __builtin_popcount(m);
	}
	return k;
}

// latent_sparse_w_out copies the totals [co1−co0, 9, cin] of the sparse
// weight gradients (both forms) to rows [co0, co1) of dw [cout, cin, 3, 3].
static void latent_sparse_w_out(float *dw, const float *tot, long cin, long co0, long co1) {
	for (long co = co0; co < co1; co++) {
		for (long ci = 0; ci < cin; ci++) {
			for (int t = 0; t < 9; t++) dw[(co * cin + ci) * 9 + t] = tot[((co - co0) * 9 + t) * cin + ci];
		}
	}
}

// latent_conv3x3_pool_grad_w computes, for output channels [co0, co1), the
// weight and bias gradients of a 3×3 "same" convolution x [n, cin, h, wd]
// → [n, cout, h, wd] followed by a ReLU and a 2×2 max pooling of stride 2,
// from the pooling's gradient dy [n, cout, h/2, wd/2] and where it
// recorded its maxima (bit 2: above zero or NaN), without the dense output
// gradient dz, three quarters of which is zero. dw [cout, cin, 3, 3] gets
// latent_conv3x3_grad_w_ref's sums of dz and db [cout] ChannelSums' over
// the samples, bit for bit, for finite x: each sample's sum runs over the
// positions in row-major order, and the positions whose dz is +0 add
// exactly nothing (a sum is never -0, and 0·x is ±0 for finite x), so they
// are skipped. The input channels are the lanes (cin a multiple of 16):
// the sample's input with its channels last, padded (xt), then for each
// listed position one fused multiply-add per weight, of its gradient and
// the 16 channels' values at the weight's offset. scratch: xt, then the
// totals [co1−co0, 9, cin], then the list.
__attribute__((target("avx512f,avx512bw,avx512vl")))
static void latent_conv3x3_pool_grad_w(float *dw, float *db, const float *x, const float *dy, const uint8_t *where,
		long n, long cin, long cout, long h, long wd, long co0, long co1, float *scratch) {
	const long hw = h * wd, ohw = h / 2 * (wd / 2);
	const latent_sparse_w g = latent_sparse_w_start(scratch, db, cin, h, wd, co0, co1);
	float *xt = g.xt, *tot = g.tot, *val = g.list.val;
	int32_t *off = g.list.off, *lane = g.list.lane;
	const long *koff = g.koff;
	for (long s = 0; s < n; s++) {
		for (long cb = 0; cb < cin; cb += 16) latent_planes_to_last(xt + cb, cin, x + (s * cin + cb) * hw, h, wd);
		for (long co = co0; co < co1; co++) {
			const long pc = (s * cout + co) * ohw;
			const long m = latent_pool_list(dy + pc, where + pc, h, wd, off, lane, val);
			// The bias's four partial sums in the lanes of b: each value
			// added to its lane, +0 to the others (which leaves them
			// alone: a partial sum is never -0).
			__m128 b = _mm_setzero_ps();
			for (long cb = 0; cb < cin; cb += 16) {
				__m512 a[9];
				_Pragma("GCC unroll 9") for (int t = 0; t < 9; t++) a[t] = _mm512_setzero_ps();
				for (long i = 0; i < m; i++) {
					const __m512 d = _mm512_set1_ps(val[i]);
					if (cb == 0) b = _mm_add_ps(b, _mm_maskz_mov_ps((__mmask8)(1 << lane[i]), _mm512_castps512_ps128(d)));
					const float *xc = xt + off[i] * cin + cb;
					_Pragma("GCC unroll 9") for (int t = 0; t < 9; t++) a[t] = _mm512_fmadd_ps(d, _mm512_loadu_ps(xc + koff[t]), a[t]);
				}
				float *tc = tot + (co - co0) * 9 * cin + cb;
				_Pragma("GCC unroll 9") for (int t = 0; t < 9; t++) _mm512_storeu_ps(tc + t * cin, _mm512_add_ps(_mm512_loadu_ps(tc + t * cin), a[t]));
			}
			db[co] += latent_sum4(b);
		}
	}
	latent_sparse_w_out(dw, tot, cin, co0, co1);
}

// latent_conv3x3_pool_grad_x computes, for samples [s0, s1), the input
// gradient dx [n, cin, h, wd] of the convolution, ReLU and pooling of
// latent_conv3x3_pool_grad_w, from w [cout, cin, 3, 3], dy and where:
// latent_conv3x3's convolution of the dense dz by w flipped, bit for bit,
// for finite w. Each value of dx is one chain of fused multiply-adds over
// the output channels in order and, within one, over the positions of dz
// in row-major order; a position whose dz is +0 adds exactly nothing, so
// only the listed ones are taken, each adding its gradient times the
// weights (the 16 input channels of a lane set) to the 9 positions it
// reaches, in a padded copy of dx with its channels last (dxt), which
// then goes back to dx. scratch: the weights [cout, 9, cin], dxt, the
// list.
__attribute__((target("avx512f,avx512bw,avx512vl")))
static void latent_conv3x3_pool_grad_x(float *dx, const float *w, const float *dy, const uint8_t *where,
		long s0, long s1, long cin, long cout, long h, long wd, float *scratch) {
	const long P = (h + 2) * (wd + 2), hw = h * wd, ohw = h / 2 * (wd / 2);
	const latent_sparse_x g = latent_sparse_x_start(scratch, w, cin, cout, h, wd);
	float *wt = g.wt, *dxt = g.dxt, *val = g.list.val;
	int32_t *off = g.list.off, *lane = g.list.lane;
	const long *koff = g.koff;
	for (long s = s0; s < s1; s++) {
		for (long t = 0; t < P * cin; t += 16) _mm512_storeu_ps(dxt + t, _mm512_setzero_ps());
		for (long co = 0; co < cout; co++) {
			const long pc = (s * cout + co) * ohw;
			const long m = latent_pool_list(dy + pc, where + pc, h, wd, off, lane, val);
			for (long cb = 0; cb < cin; cb += 16) {
				__m512 wv[9];
				_Pragma("GCC unroll 9") for (int t = 0; t < 9; t++) wv[t] = _mm512_loadu_ps(wt + (co * 9 + t) * cin + cb);
				for (long i = 0; i < m; i++) {
					const __m512 d = _mm512_set1_ps(val[i]);
					float *dp = dxt + off[i] * cin + cb;
					_Pragma("GCC unroll 9") for (int t = 0; t < 9; t++) {
						float *at = dp + koff[t];
						_mm512_storeu_ps(at, _mm512_fmadd_ps(wv[t], d, _mm512_loadu_ps(at)));
					}
				}
			}
		}
		for (long cb = 0; cb < cin; cb += 16) latent_last_to_planes(dx + (s * cin + cb) * hw, dxt + cb, cin, h, wd);
	}
}

// latent_planes_to_last8 is latent_planes_to_last without AVX-512, for c
// channels, a multiple of 8: xt, a plane padded by one value all round
// (rows of wd+2) with the channels last, gets the planes of x [c, h, wd].
// The padding is left alone. Blocks of 8 channels by 8 places of a row,
// transposed in registers; a row's last block ends at its end, taking
// some places twice, where wd is not a multiple of 8 (wd < 8: one place at
// a time).
__attribute__((target("avx2")))
static void latent_planes_to_last8(float *xt, const float *x, long c, long h, long wd) {
	const long hw = h * wd, W2 = wd + 2;
	for (long y = 0; y < h; y++) {
		for (long j = 0; j < wd; j += 8) {
			const long j0 = wd < 8 ? j : j + 8 <= wd ? j : wd - 8, nj = wd < 8 ? wd : 8;
			float *q = xt + ((y + 1) * W2 + j0 + 1) * c;
			const float *src = x + y * wd + j0;
			for (long cb = 0; cb < c; cb += 8) {
				if (nj == 8) latent_tr8x8(src + cb * hw, hw, q + cb, c);
				else
					for (long i = 0; i < 8; i++)
						for (long l = 0; l < nj; l++) q[l * c + cb + i] = src[(cb + i) * hw + l];
			}
		}
	}
}

// latent_last_to_planes8 is latent_planes_to_last8's way back.
__attribute__((target("avx2")))
static void latent_last_to_planes8(float *x, const float *xt, long c, long h, long wd) {
	const long hw = h * wd, W2 = wd + 2;
	for (long y = 0; y < h; y++) {
		for (long j = 0; j < wd; j += 8) {
			const long j0 = wd < 8 ? j : j + 8 <= wd ? j : wd - 8, nj = wd < 8 ? wd : 8;
			const float *q = xt + ((y + 1) * W2 + j0 + 1) * c;
			float *dst = x + y * wd + j0;
			for (long cb = 0; cb < c; cb += 8) {
				if (nj == 8) latent_tr8x8(q + cb, c, dst + cb * hw, hw);
				else
					for (long i = 0; i < 8; i++)
						for (long l = 0; l < nj; l++) dst[(cb + i) * hw + l] = q[l * c + cb + i];
			}
		}
	}
}

// latent_sparse_w_taps8 adds, for taps [t0, t0+nt) (nt ≤ 6), each listed
// place's value times the 16 input channels at xc + off[i]·cin + koff[t]
// (both registers) to tc + t·cin: the sums of latent_conv3x3_pool_grad_w_avx2,
// one chain a weight over the places in order, from +0.
__attribute__((target("avx2,fma"), always_inline))
static inline void latent_sparse_w_taps8(float *tc, long cin, const float *xc, const int32_t *off, const float *val, long m,
		const long koff[9], const int t0, const int nt) {
	__m256 a[6][2];
	_Pragma("GCC unroll 6") for (int t = 0; t < nt; t++) a[t][0] = a[t][1] = _mm256_setzero_ps();
	for (long i = 0; i < m; i++) {
		const __m256 d = _mm256_broadcast_ss(val + i);
		const float *p = xc + off[i] * cin;
		_Pragma("GCC unroll 6") for (int t = 0; t < nt; t++) {
			a[t][0] = _mm256_fmadd_ps(d, _mm256_loadu_ps(p + koff[t0 + t]), a[t][0]);
			a[t][1] = _mm256_fmadd_ps(d, _mm256_loadu_ps(p + koff[t0 + t] + 8), a[t][1]);
		}
	}
	_Pragma("GCC unroll 6") for (int t = 0; t < nt; t++) {
		float *q = tc + (t0 + t) * cin;
		_mm256_storeu_ps(q, _mm256_add_ps(_mm256_loadu_ps(q), a[t][0]));
		_mm256_storeu_ps(q + 8, _mm256_add_ps(_mm256_loadu_ps(q + 8), a[t][1]));
	}
}

// latent_conv3x3_pool_grad_w_avx2 is latent_conv3x3_pool_grad_w with AVX2
// and FMA, the same bits: blocks of 16 input channels, two registers, the
// list taken twice, for the first six taps (12 sums in flight) and then
// the last three; each listed place one fused multiply-add per weight, in
// the same order.
__attribute__((target("avx2,fma")))
static void latent_conv3x3_pool_grad_w_avx2(float *dw, float *db, const float *x, const float *dy, const uint8_t *where,
		long n, long cin, long cout, long h, long wd, long co0, long co1, float *scratch) {
	const long hw = h * wd, ohw = h / 2 * (wd / 2);
	const latent_sparse_w g = latent_sparse_w_start(scratch, db, cin, h, wd, co0, co1);
	float *xt = g.xt, *tot = g.tot, *val = g.list.val;
	int32_t *off = g.list.off, *lane = g.list.lane;
	const long *koff = g.koff;
	__m128 lanes[4];
	for (int l = 0; l < 4; l++) lanes[l] = _mm_castsi128_ps(_mm_cmpeq_epi32(_mm_setr_epi32(0, 1, 2, 3), _mm_set1_epi32(l)));
	for (long s = 0; s < n; s++) {
		latent_planes_to_last8(xt, x + s * cin * hw, cin, h, wd);
		for (long co = co0; co < co1; co++) {
			const long pc = (s * cout + co) * ohw;
			const long m = latent_pool_list8(dy + pc, where + pc, h, wd, off, lane, val);
			__m128 b = _mm_setzero_ps();
			for (long i = 0; i < m; i++) b = _mm_add_ps(b, _mm_and_ps(_mm_set1_ps(val[i]), lanes[lane[i]]));
			for (long cb = 0; cb < cin; cb += 16) {
				float *tc = tot + (co - co0) * 9 * cin + cb;
				// The first six taps (12 sums in flight), then the last
				// three.
				latent_sparse_w_taps8(tc, cin, xt + cb, off, val, m, koff, 0, 6);
				latent_sparse_w_taps8(tc, cin, xt + cb, off, val, m, koff, 6, 3);
			}
			db[co] += latent_sum4(b);
		}
	}
	latent_sparse_w_out(dw, tot, cin, co0, co1);
}

// latent_conv3x3_pool_grad_x_avx2 is latent_conv3x3_pool_grad_x with AVX2
// and FMA, the same bits: blocks of 16 input channels, two registers,
// whose updates are independent of each other and so overlap; the list
// taken three times, once for each row of taps from the last (ky = 2)
// to the first, each place updating its 3 neighbours in that row of dx.
// A value of dx still gets its terms in the order of the places: from
// the row of places above it (ky = 2) first, and within a row in the
// list's order.
__attribute__((target("avx2,fma")))
static void latent_conv3x3_pool_grad_x_avx2(float *dx, const float *w, const float *dy, const uint8_t *where,
		long s0, long s1, long cin, long cout, long h, long wd, float *scratch) {
	const long P = (h + 2) * (wd + 2), hw = h * wd, ohw = h / 2 * (wd / 2);
	const latent_sparse_x g = latent_sparse_x_start(scratch, w, cin, cout, h, wd);
	float *wt = g.wt, *dxt = g.dxt, *val = g.list.val;
	int32_t *off = g.list.off, *lane = g.list.lane;
	const long *koff = g.koff;
	for (long s = s0; s < s1; s++) {
		__builtin_memset(dxt, 0, P * cin * sizeof(float));
		for (long co = 0; co < cout; co++) {
			const long pc = (s * cout + co) * ohw;
			const long m = latent_pool_list8(dy + pc, where + pc, h, wd, off, lane, val);
			for (long cb = 0; cb < cin; cb += 16) {
				for (int ky = 2; ky >= 0; ky--) {
					__m256 wv[3][2];
					_Pragma("GCC unroll 3") for (int kx = 0; kx < 3; kx++) {
						wv[kx][0] = _mm256_loadu_ps(wt + (co * 9 + ky * 3 + kx) * cin + cb);
						wv[kx][1] = _mm256_loadu_ps(wt + (co * 9 + ky * 3 + kx) * cin + cb + 8);
					}
					for (long i = 0; i < m; i++) {
						const __m256 d = _mm256_broadcast_ss(val + i);
						float *dp = dxt + off[i] * cin + cb;
						_Pragma("GCC unroll 3") for (int kx = 0; kx < 3; kx++) {
							float *at = dp + koff[ky * 3 + kx];
							const __m256 a0 = _mm256_loadu_ps(at), a1 = _mm256_loadu_ps(at + 8);
							_mm256_storeu_ps(at, _mm256_fmadd_ps(wv[kx][0], d, a0));
							_mm256_storeu_ps(at + 8, _mm256_fmadd_ps(wv[kx][1], d, a1));
						}
					}
				}
			}
		}
		latent_last_to_planes8(dx + s * cin * hw, dxt, cin, h, wd);
	}
}

static void latent_conv3x3_pool_grad_w_width(int width, float *dw, float *db, const float *x, const float *dy, const uint8_t *where,
		long n, long cin, long cout, long h, long wd, long co0, long co1, float *scratch) {
	if (width == 16) latent_conv3x3_pool_grad_w(dw, db, x, dy, where, n, cin, cout, h, wd, co0, co1, scratch);
	else latent_conv3x3_pool_grad_w_avx2(dw, db, x, dy, where, n, cin, cout, h, wd, co0, co1, scratch);
}

static void latent_conv3x3_pool_grad_x_width(int width, float *dx, const float *w, const float *dy, const uint8_t *where,
		long s0, long s1, long cin, long cout, long h, long wd, float *scratch) {
	if (width == 16) latent_conv3x3_pool_grad_x(dx, w, dy, where, s0, s1, cin, cout, h, wd, scratch);
	else latent_conv3x3_pool_grad_x_avx2(dx, w, dy, where, s0, s1, cin, cout, h, wd, scratch);
}
*/
import "C"

// AdamWidth is how many values the C Adam update computes at once: 16 with
// AVX-512, 8 with AVX2, else 1.
var AdamWidth = int(C.latent_adam_width())

// Vector is whether the CPU has AVX-512, which the sparse convolution
// gradients and the first layer's pooled gradient need; without it they
// fall back to other paths.
var Vector = AdamWidth == 16

// elemWidth is the width of the element-wise kernels' vector form (BiasReLU,
// ReLUGrad, AddRows, BiasReLUScalar, MaxPool2x2Grad, Interleave2 and
// Deinterleave2): 16 with AVX-512, 8 with AVX2, 0 for the Go or scalar C
// loops. Each form gives the same bits. The tests set it to check each.
var elemWidth = AdamWidth

// elemWidths are the element-wise forms this CPU runs, for the tests.
func elemWidths() []int {
	switch elemWidth {
	case 16:
		return []int{16, 8, 0}
	case 8:
		return []int{8, 0}
	}
	return []int{0}
}

// fmaWidth is how many values at once the kernels with both an AVX-512
// and an AVX2 form (Conv3x3, Conv3x3ReLUPool, Conv3x3GradW and the
// Conv3x3PoolGrad ones) take on this CPU: 16 with AVX-512, 8 with AVX2 and FMA,
// 0 where they do not run. Both forms give the same bits.
var fmaWidth = int(C.latent_fma_width())

func init() { C.latent_pack8_init() }

// DirectConv is whether the direct 3×3 convolution kernels run on this
// CPU: with AVX-512, or with AVX2 and FMA.
var DirectConv = fmaWidth != 0

// widths are the widths of the kernels with two forms that this CPU runs,
// for the tests: both where it has AVX-512.
func widths() []int {
	switch fmaWidth {
	case 16:
		return []int{16, 8}
	case 8:
		return []int{8}
	}
	return nil
}

// sigmoidWidth is the width of the sigmoid's vector form on this CPU: 16
// with AVX-512 (and its DQ and VL parts), 8 with AVX2, 0 without; each
// computes 8 values at a time, 8 or 4 of them in float64 registers.
var sigmoidWidth = int(C.latent_sigmoid_width())

// sigmoidWidths are the sigmoid's forms on this CPU, for the tests: the
// vector ones, then Go's loop (0).
func sigmoidWidths() []int {
	switch sigmoidWidth {
	case 16:
		return []int{16, 8, 0}
	case 8:
		return []int{8, 0}
	}
	return []int{0}
}

// Adam applies step s to p with the gradient g and the moments m and v, in
// place, one value at a time (AdamGo's arithmetic, in C).
func Adam(p, g, m, v []float32, s AdamStep) {
	if len(p) == 0 {
		return
	}
	g, m, v = g[:len(p)], m[:len(p)], v[:len(p)]
	C.latent_adam_update(C.int(AdamWidth), (*C.float)(&p[0]), (*C.float)(&g[0]), (*C.float)(&m[0]), (*C.float)(&v[0]), C.long(len(p)), hyper(s))
}

func hyper(s AdamStep) C.latent_adam_hyper {
	return C.latent_adam_hyper{C.float(s.StepSize), C.float(s.InvBC2Sqrt), C.float(s.B1), C.float(s.B2), C.float(s.Eps), C.float(s.WeightDecay)}
}

// LinearWeightStep computes rows [r0, r1) of a Linear layer's weight
// gradient dW = xᵀ·dz (x [n, in], dz [n, out], row-major) and applies Adam's
// step s to the same rows of the weight p [in, out] and of its moments m and
// v, with the gradient in registers. Each value of dW is summed over the n
// samples in order, with one fused multiply-add a sample: the bits of
// LinearWeightStepRef on every CPU, which may differ from a BLAS's gemm by
// rounding. It reports false, doing nothing, where the CPU lacks AVX-512.
func LinearWeightStep(x, dz []float32, n, in, out, r0, r1 int, p, m, v []float32, s AdamStep) bool {
	if !Vector {
		return false
	}
	if r0 >= r1 || n == 0 || out == 0 {
		return true
	}
	_, _ = x[(n-1)*in+r1-1], dz[n*out-1]
	_, _, _ = p[in*out-1], m[in*out-1], v[in*out-1]
	C.latent_linear_dw_adam512((*C.float)(&x[0]), (*C.float)(&dz[0]), C.long(n), C.long(in), C.long(out), C.long(r0), C.long(r1),
		(*C.float)(&p[0]), (*C.float)(&m[0]), (*C.float)(&v[0]), hyper(s))
	return true
}

// LinearWeightStepRef is LinearWeightStep's scalar reference in C: the
// same sums in the same order (fmaf), one value at a time.
func LinearWeightStepRef(x, dz []float32, n, in, out, r0, r1 int, p, m, v []float32, s AdamStep) {
	if r0 >= r1 || n == 0 || out == 0 {
		return
	}
	_, _ = x[(n-1)*in+r1-1], dz[n*out-1]
	_, _, _ = p[in*out-1], m[in*out-1], v[in*out-1]
	C.latent_linear_dw_adam_ref((*C.float)(&x[0]), (*C.float)(&dz[0]), C.long(n), C.long(in), C.long(out), C.long(r0), C.long(r1),
		(*C.float)(&p[0]), (*C.float)(&m[0]), (*C.float)(&v[0]), hyper(s))
}

// BiasReLU sets v[j] = max(v[j]+b[j], 0), with NaN kept and -0 made +0.
func BiasReLU(v, b []float32) {
	if len(v) == 0 {
		return
	}
	if elemWidth == 0 {
		BiasReLUGo(v, b)
		return
	}
	_ = b[len(v)-1]
	if elemWidth == 16 {
		C.latent_bias_relu((*C.float)(&v[0]), (*C.float)(&b[0]), C.long(len(v)))
	} else {
		C.latent_bias_relu8((*C.float)(&v[0]), (*C.float)(&b[0]), C.long(len(v)))
	}
}

// ReLUGrad sets dz[j] = dy[j] where y[j] > 0 or is NaN, else +0.
func ReLUGrad(dz, y, dy []float32) {
	if len(dz) == 0 {
		return
	}
	if elemWidth == 0 {
		ReLUGradGo(dz, y, dy)
		return
	}
	_, _ = y[len(dz)-1], dy[len(dz)-1]
	if elemWidth == 16 {
		C.latent_relu_grad((*C.float)(&dz[0]), (*C.float)(&y[0]), (*C.float)(&dy[0]), C.long(len(dz)))
	} else {
		C.latent_relu_grad8((*C.float)(&dz[0]), (*C.float)(&y[0]), (*C.float)(&dy[0]), C.long(len(dz)))
	}
}

// MSESigmoidGrad is MSESigmoidGradGo, 8 values at a time where the CPU has
// AVX2, with its bits.
func MSESigmoidGrad(dz, y, x []float32, k float32) bool {
	if len(dz) == 0 {
		return true
	}
	if elemWidth == 0 {
		return MSESigmoidGradGo(dz, y, x, k)
	}
	_, _ = y[len(dz)-1], x[len(dz)-1]
	return C.latent_mse_sigmoid_grad8((*C.float)(&dz[0]), (*C.float)(&y[0]), (*C.float)(&x[0]), C.float(k), C.long(len(dz))) != 0
}

// AddRows adds rows rows of v, len(s) values each and ld apart, to s, a row
// at a time.
func AddRows(s, v []float32, rows, ld int) {
	if len(s) == 0 || rows == 0 {
		return
	}
	if elemWidth == 0 {
		AddRowsGo(s, v, rows, ld)
		return
	}
	_ = v[(rows-1)*ld+len(s)-1]
	if elemWidth == 16 {
		C.latent_add_rows((*C.float)(&s[0]), (*C.float)(&v[0]), C.long(rows), C.long(len(s)), C.long(ld))
	} else {
		C.latent_add_rows8((*C.float)(&s[0]), (*C.float)(&v[0]), C.long(rows), C.long(len(s)), C.long(ld))
	}
}

// BiasSigmoid sets v[i] = Sigmoid32(v[i] + b).
func BiasSigmoid(v []float32, b float32) { biasSigmoidWidth(sigmoidWidth, v, b) }

// biasSigmoidWidth is BiasSigmoid with the vector form of width (16, 8, or
// 0 for Go's loop alone).
func biasSigmoidWidth(width int, v []float32, b float32) {
	j := 0
	if width != 0 && len(v) >= 8 {
		j = int(C.latent_sigmoid(C.int(width), (*C.float)(&v[0]), C.long(len(v)), C.float(b), (*C.double)(&exp2Table[0])))
	}
	for i, x := range v[j:] {
		v[j+i] = Sigmoid32(x + b)
	}
}

// BiasReLUScalar sets v[j] = max(v[j]+b, 0), with NaN kept and -0 made +0.
func BiasReLUScalar(v []float32, b float32) {
	if len(v) == 0 {
		return
	}
	switch elemWidth {
	case 16:
		C.latent_bias_relu_scalar((*C.float)(&v[0]), C.float(b), C.long(len(v)))
	case 8:
		C.latent_bias_relu_scalar8((*C.float)(&v[0]), C.float(b), C.long(len(v)))
	default:
		BiasReLUScalarGo(v, b)
	}
}

// ChannelSums is ChannelSumsGo in C, with SSE (8 channels at a time): the
// same bits.
func ChannelSums(d, block []float32, inner int) {
	if len(d) == 0 || inner == 0 {
		return
	}
	_ = block[len(d)*inner-1]
	C.latent_channel_sums((*C.float)(&d[0]), (*C.float)(&block[0]), C.long(len(d)), C.long(inner))
}

// Col2Im1 is Col2Im1Go with AVX-512.
func Col2Im1(dx, cols []float32, c, k, h, w, oh, ow, pad int) {
	if !Vector || c == 0 {
		Col2Im1Go(dx, cols, c, k, h, w, oh, ow, pad)
		return
	}
	_, _ = dx[c*h*w-1], cols[c*k*k*oh*ow-1]
	C.latent_col2im1((*C.float)(&dx[0]), (*C.float)(&cols[0]), C.long(c), C.long(k), C.long(h), C.long(w), C.long(oh), C.long(ow), C.long(pad))
}

// MaxPool2x2Grad is MaxPool2x2GradGo, 16 windows at a time with AVX-512.
func MaxPool2x2Grad(grad []float32, planes, w, hw, oh, ow int, dy []float32, where []uint8, relu bool) {
	if planes == 0 {
		return
	}
	if elemWidth == 0 {
		MaxPool2x2GradGo(grad, planes, w, hw, oh, ow, dy, where, relu)
		return
	}
	_, _, _ = grad[planes*hw-1], dy[planes*oh*ow-1], where[planes*oh*ow-1]
	if elemWidth == 16 && maskedBytes != 0 {
		C.latent_maxpool2x2_grad((*C.float)(&grad[0]), C.long(planes), C.long(w), C.long(hw), C.long(oh), C.long(ow), (*C.float)(&dy[0]), (*C.uint8_t)(&where[0]), cBool(relu))
	} else {
		C.latent_maxpool2x2_grad8((*C.float)(&grad[0]), C.long(planes), C.long(w), C.long(hw), C.long(oh), C.long(ow), (*C.float)(&dy[0]), (*C.uint8_t)(&where[0]), cBool(relu))
	}
}

// maskedBytes is whether the CPU has AVX-512's masked byte loads
// (AVX512BW and VL), which MaxPool2x2Grad's kernel uses.
var maskedBytes = C.latent_masked_bytes()

// MaxPool2x2 is MaxPool2x2Go, 16 windows at a time with AVX-512.
func MaxPool2x2(x []float32, planes, w, hw, oh, ow int, y []float32, where []uint8) {
	if planes == 0 || oh == 0 || ow == 0 {
		return
	}
	if !Vector {
		MaxPool2x2Go(x, planes, w, hw, oh, ow, y, where)
		return
	}
	_, _ = x[(planes-1)*hw+(2*oh-1)*w+2*ow-1], y[planes*oh*ow-1]
	var wp *C.uint8_t
	if where != nil {
		_ = where[planes*oh*ow-1]
		wp = (*C.uint8_t)(&where[0])
	}
	C.latent_maxpool2x2((*C.float)(&x[0]), C.long(planes), C.long(w), C.long(hw), C.long(oh), C.long(ow), (*C.float)(&y[0]), wp)
}

// Describe says which kernels run on this CPU.
func Describe() string {
	switch {
	case Vector:
		return "C with AVX-512 (Adam 16 values at a time, the Linear products and fused weight step, the direct 3×3 convolution, element-wise loops)"
	case AdamWidth == 8:
		if DirectConv {
			return "C with AVX2 and FMA (Adam 8 values at a time, the direct 3×3 convolution, its gradients and the element-wise loops); OpenBLAS or gonum for the Linear products"
		}
		return "C with AVX2 (Adam 8 values at a time); Go for the rest"
	}
	return "C, one value at a time, for Adam; Go for the rest (no AVX2 or AVX-512 on this CPU)"
}

// transposeVector is whether the CPU runs the AVX transpose.
var transposeVector = C.latent_transpose_vector() != 0

// Transpose sets dst [cols, rows] to the transpose of src [rows, cols]
// (TransposeGo), in C with AVX 8×8 blocks where the CPU has AVX.
func Transpose(dst, src []float32, rows, cols int) {
	if rows*cols == 0 {
		return
	}
	if !transposeVector {
		TransposeGo(dst, src, rows, cols)
		return
	}
	_, _ = dst[rows*cols-1], src[rows*cols-1]
	C.latent_transpose_avx((*C.float)(&dst[0]), (*C.float)(&src[0]), C.long(rows), C.long(cols))
}

// Interleave2 is Interleave2Go on planes consecutive planes (dst's and
// src's 4·h·w values each), plane c with bias[c], followed, with relu, by
// BiasReLUScalarGo with bias 0; in C, with AVX-512 where the CPU has it:
// the same bits.
func Interleave2(dst, src []float32, planes, h, w int, bias []float32, relu bool) {
	if planes*h*w == 0 {
		return
	}
	n := planes * 4 * h * w
	_, _, _ = dst[n-1], src[n-1], bias[planes-1]
	switch elemWidth {
	case 16:
		C.latent_interleave2_avx512((*C.float)(&dst[0]), (*C.float)(&src[0]), C.long(planes), C.long(h), C.long(w), (*C.float)(&bias[0]), cBool(relu))
		return
	case 8:
		C.latent_interleave2_avx2((*C.float)(&dst[0]), (*C.float)(&src[0]), C.long(planes), C.long(h), C.long(w), (*C.float)(&bias[0]), cBool(relu))
		return
	}
	for p := range planes {
		o := p * 4 * h * w
		C.latent_interleave2((*C.float)(&dst[o]), (*C.float)(&src[o]), C.long(h), C.long(w), C.float(bias[p]))
		if relu {
			BiasReLUScalar(dst[o:o+4*h*w], 0)
		}
	}
}

// Deinterleave2 is Deinterleave2Go on planes consecutive planes (dz's,
// y's and dy's 4·h·w values each), in C, with AVX-512 where the CPU has it:
// the same bits.
func Deinterleave2(dz, y, dy []float32, planes, h, w int, act Act) {
	if planes*h*w == 0 {
		return
	}
	n := planes * 4 * h * w
	_, _, _ = dz[n-1], y[n-1], dy[n-1]
	switch elemWidth {
	case 16:
		C.latent_deinterleave2_avx512((*C.float)(&dz[0]), (*C.float)(&y[0]), (*C.float)(&dy[0]), C.long(planes), C.long(h), C.long(w), C.int(act))
		return
	case 8:
		C.latent_deinterleave2_avx2((*C.float)(&dz[0]), (*C.float)(&y[0]), (*C.float)(&dy[0]), C.long(planes), C.long(h), C.long(w), C.int(act))
		return
	}
	for p := range planes {
		o := p * 4 * h * w
		C.latent_deinterleave2((*C.float)(&dz[o]), (*C.float)(&y[o]), (*C.float)(&dy[o]), C.long(h), C.long(w), C.int(act))
	}
}

// Im2ColSame is Im2ColSameGo in C with AVX-512, the same values; it
// reports false, doing nothing, where the CPU lacks AVX-512 or the padded
// plane is larger than the kernel's buffer (4,096 values).
func Im2ColSame(dst, x []float32, c, h, w, k, pad, r0, r1 int) bool {
	if !Vector || (h+2*pad)*(w+2*pad) > C.LATENT_PAD_MAX || h+2*pad != h+k-1 || w+2*pad != w+k-1 {
		return false
	}
	if r0 >= r1 {
		return true
	}
	_, _ = dst[(r1-r0)*h*w-1], x[c*h*w-1]
	if r1 > c*k*k {
		panic("kernels: Im2ColSame rows out of range")
	}
	C.latent_im2col_same((*C.float)(&dst[0]), (*C.float)(&x[0]), C.long(c), C.long(h), C.long(w), C.long(k), C.long(pad), C.long(r0), C.long(r1))
	return true
}

// Conv3x3 sets y [n, cout, h, wd] to the 3×3 convolutions of the n
// samples x [n, cin, h, wd] by w [cout, cin, 3, 3], with stride 1 and
// padding 1 and without bias, with AVX-512 or AVX2 and FMA: the bits of
// Conv3x3Ref on either, each value summed over ci, then ky, then kx, from
// +0, one fused multiply-add a term. It reports false, doing nothing,
// where the CPU lacks both, a row is longer than 30 values, cout is not a
// multiple of 8 (rows of up to 14 values) or 4 (longer rows), or a
// sample's padded input or the weights would exceed their buffers (16,384
// values each).
func Conv3x3(y, x, w []float32, n, cin, cout, h, wd int) bool {
	return conv3x3Width(fmaWidth, y, x, w, n, cin, cout, h, wd)
}

// conv3x3Width is Conv3x3 with width values at a time (one of widths).
func conv3x3Width(width int, y, x, w []float32, n, cin, cout, h, wd int) bool {
	if n < 1 || !conv3x3Fits(width, cin, cout, h, wd) {
		return false
	}
	_, _, _ = y[n*cout*h*wd-1], x[n*cin*h*wd-1], w[cout*cin*9-1]
	C.latent_conv3x3_width(C.int(width), (*C.float)(&y[0]), (*C.float)(&x[0]), (*C.float)(&w[0]), C.long(n), C.long(cin), C.long(cout), C.long(h), C.long(wd), nil, nil, nil)
	return true
}

// Conv3x3ReLUPool is Conv3x3, then BiasReLUScalar of each output channel c
// of y with bias[c], then MaxPool2x2 of y's n·cout planes into pooled [n,
// cout, h/2, wd/2], recording where (nil: not recorded) as MaxPool2x2
// does; each output row is pooled while it is in registers, and every
// value of y, pooled and where is the one the three kernels give, bit for
// bit. A nil y is not written: the pooled values and where alone. h and
// wd must be even; it reports false, doing nothing, where they are not or
// where Conv3x3 would.
func Conv3x3ReLUPool(y, x, w, bias []float32, n, cin, cout, h, wd int, pooled []float32, where []uint8) bool {
	return conv3x3ReLUPoolWidth(fmaWidth, y, x, w, bias, n, cin, cout, h, wd, pooled, where)
}

// setConvPoolCL sets whether the AVX2 form of Conv3x3ReLUPool takes the
// layers it can with the output channels as the lanes (the default), or
// with the rows as the lanes as for every other layer: the tests check
// both.
func setConvPoolCL(on bool) { C.latent_set_conv3x3_pool_cl(cBool(on)) }

// conv3x3ReLUPoolWidth is Conv3x3ReLUPool with width values at a time (one
// of widths).
func conv3x3ReLUPoolWidth(width int, y, x, w, bias []float32, n, cin, cout, h, wd int, pooled []float32, where []uint8) bool {
	if n < 1 || h%2 != 0 || wd%2 != 0 || !conv3x3Fits(width, cin, cout, h, wd) {
		return false
	}
	np := n * cout * h * wd / 4
	_, _, _, _ = x[n*cin*h*wd-1], w[cout*cin*9-1], bias[cout-1], pooled[np-1]
	var yp *C.float
	if y != nil {
		_ = y[n*cout*h*wd-1]
		yp = (*C.float)(&y[0])
	}
	var wp *C.uint8_t
	if where != nil {
		_ = where[np-1]
		wp = (*C.uint8_t)(&where[0])
	}
	C.latent_conv3x3_width(C.int(width), yp, (*C.float)(&x[0]), (*C.float)(&w[0]), C.long(n), C.long(cin), C.long(cout), C.long(h), C.long(wd),
		(*C.float)(&bias[0]), (*C.float)(&pooled[0]), wp)
	return true
}

// Conv3x3GradW sets input channels [ci0, ci1) of dw [cout, cin, 3, 3] to
// the weight gradient of Conv3x3 over n samples, from their inputs x [n,
// cin, h, wd] and their output gradients with the channels last, dzT [n,
// h·wd, cout] (each sample's dz [cout, h·wd] transposed), with AVX-512 or
// AVX2 and FMA: the bits of Conv3x3GradWRef on either, each value the sum
// over the samples, in order, of a sample's sum over its rows and columns
// in order, one fused multiply-add a term. scratch is the caller's, at
// least Conv3x3GradWScratch(ci1−ci0, cout, h, wd) values, overwritten. It
// reports false, doing nothing, where the CPU lacks both or cout is not a
// multiple of 16.
func Conv3x3GradW(dw, x, dzT []float32, n, cin, cout, h, wd, ci0, ci1 int, scratch []float32) bool {
	return conv3x3GradWWidth(fmaWidth, dw, x, dzT, n, cin, cout, h, wd, ci0, ci1, scratch)
}

// conv3x3GradWWidth is Conv3x3GradW with width values at a time (one of
// widths).
func conv3x3GradWWidth(width int, dw, x, dzT []float32, n, cin, cout, h, wd, ci0, ci1 int, scratch []float32) bool {
	if width == 0 || cout < 16 || cout%16 != 0 || n < 1 || h < 1 || wd < 1 || ci0 < 0 || ci1 > cin || ci1 <= ci0 {
		return false
	}
	_, _, _, _ = dw[cout*cin*9-1], x[n*cin*h*wd-1], dzT[n*cout*h*wd-1], scratch[Conv3x3GradWScratch(ci1-ci0, cout, h, wd)-1]
	C.latent_conv3x3_grad_w_width(C.int(width), (*C.float)(&dw[0]), (*C.float)(&x[0]), (*C.float)(&dzT[0]), C.long(n), C.long(cin), C.long(cout), C.long(h), C.long(wd),
		C.long(ci0), C.long(ci1), (*C.float)(&scratch[0]))
	return true
}

// Conv3x3PoolGrad computes the gradient sums of samples [s0, s1) of a 3×3
// "same" convolution of one input channel, x [n, 1, h, wd], followed by a
// 2×2 max pooling of stride 2 (with relu, with a ReLU between them), from
// the pooling's gradient dy [n, cout, h/2, wd/2] and where MaxPool2x2
// recorded its maxima, each sample's output gradient dz (what
// MaxPool2x2Grad writes) only in scratch: part [s1−s0, 10, cout] gets, for
// each sample, the 9 weights' sums over the sample's positions of dz·x
// (those of Conv3x3PoolGradRef, which are OpenBLAS's SkylakeX product's
// for 100 positions or more) and the sums of dz (ChannelSums').
// Conv3x3PoolGradTotal adds them up. h and wd are even; scratch is the
// caller's, at least Conv3x3PoolGradScratch(cout, h, wd) values,
// overwritten. Both forms (AVX-512 with its byte and 256-bit
// instructions, AVX2 with FMA) give the same bits; it reports false, doing
// nothing, where the CPU has neither.
func Conv3x3PoolGrad(part, x, dy []float32, where []uint8, relu bool, s0, s1, cout, h, wd int, scratch []float32) bool {
	return conv3x3PoolGradWidth(poolGradWidth(), part, x, dy, where, relu, s0, s1, cout, h, wd, scratch)
}

// poolGradWidth is the width of Conv3x3PoolGrad's form on this CPU: 16
// with AVX-512 and its byte instructions, 8 with AVX2 and FMA, else 0.
func poolGradWidth() int {
	switch {
	case Vector && maskedBytes != 0:
		return 16
	case DirectConv:
		return 8
	}
	return 0
}

// poolGradWidths are Conv3x3PoolGrad's forms on this CPU, for the tests.
func poolGradWidths() []int {
	switch poolGradWidth() {
	case 16:
		return []int{16, 8}
	case 8:
		return []int{8}
	}
	return nil
}

// conv3x3PoolGradWidth is Conv3x3PoolGrad in the form of width (one of
// poolGradWidths).
func conv3x3PoolGradWidth(width int, part, x, dy []float32, where []uint8, relu bool, s0, s1, cout, h, wd int, scratch []float32) bool {
	if width == 0 || h < 2 || wd < 2 || h%2 != 0 || wd%2 != 0 || cout < 1 || s0 < 0 || s1 <= s0 {
		return false
	}
	ohw := h / 2 * wd / 2
	_, _, _, _ = part[(s1-s0)*10*cout-1], x[s1*h*wd-1], dy[s1*cout*ohw-1], where[s1*cout*ohw-1]
	_ = scratch[Conv3x3PoolGradScratch(cout, h, wd)-1]
	C.latent_conv3x3_pool_grad_width(C.int(width), (*C.float)(&part[0]), (*C.float)(&x[0]), (*C.float)(&dy[0]), (*C.uint8_t)(&where[0]), cBool(relu),
		C.long(s0), C.long(s1), C.long(cout), C.long(h), C.long(wd), (*C.float)(&scratch[0]))
	return true
}

// Conv3x3PoolGradFits reports whether Conv3x3PoolGrad runs on this CPU.
func Conv3x3PoolGradFits() bool { return poolGradWidth() != 0 }

// Conv3x3PoolGradScratch is the size of Conv3x3PoolGrad's scratch, for
// either form: a sample's dz and the zero-padded input plane, and two
// masks for each 16 positions (AVX-512) or the plane's 9 im2col columns
// (AVX2).
func Conv3x3PoolGradScratch(cout, h, wd int) int {
	r := (h*wd + 15) / 16
	return cout*h*wd + max(2*wd+h*wd+32+r, (h+2)*(wd+2)+9*16*r)
}

// Conv3x3PoolGradRef is the scalar reference, in C for its fused
// multiply-adds (fmaf), of the weight gradient that Conv3x3PoolGrad and
// Conv3x3PoolGradTotal compute, from the dense output gradient dz [n,
// cout, h·wd] of the convolution of x [n, 1, h, wd]: dw [cout, 1, 3, 3].
func Conv3x3PoolGradRef(dw, x, dz []float32, n, cout, h, wd int) {
	if n*cout*h*wd == 0 {
		return
	}
	_, _, _ = dw[cout*9-1], x[n*h*wd-1], dz[n*cout*h*wd-1]
	C.latent_conv3x3_pool_grad_ref((*C.float)(&dw[0]), (*C.float)(&x[0]), (*C.float)(&dz[0]), C.long(n), C.long(cout), C.long(h), C.long(wd))
}

// Conv3x3PoolGradW computes rows [co0, co1) of the weight gradient dw
// [cout, cin, 3, 3] and of the bias gradient db [cout] of a 3×3 "same"
// convolution of x [n, cin, h, wd] followed by a ReLU and a 2×2 max
// pooling of stride 2, from the pooling's gradient dy [n, cout, h/2, wd/2]
// and where MaxPool2x2 recorded its maxima, without the dense output
// gradient dz that MaxPool2x2Grad (with relu) would write: dw gets
// Conv3x3GradWRef's sums of that dz and db ChannelSums' added up over the
// samples from zero, bit for bit where x is finite (with ±Inf or NaN in
// x, the dense sums' 0·x terms would make NaN that these leave out).
// The goroutines may share the output channels. h and wd are even, cin a
// multiple of 16; scratch is the caller's, at least
// Conv3x3PoolGradWScratch(cin, h, wd, co1−co0) values, overwritten. Its
// AVX-512 and AVX2 forms give the same bits; it reports false, doing
// nothing, where the CPU has neither.
func Conv3x3PoolGradW(dw, db, x, dy []float32, where []uint8, n, cin, cout, h, wd, co0, co1 int, scratch []float32) bool {
	return conv3x3PoolGradWWidth(sparseWidth(), dw, db, x, dy, where, n, cin, cout, h, wd, co0, co1, scratch)
}

// sparseWidth is the width of Conv3x3PoolGradW's and Conv3x3PoolGradX's
// form on this CPU: 16 with AVX-512 and its byte instructions, 8 with
// AVX2 and FMA, else 0.
func sparseWidth() int { return poolGradWidth() }

// conv3x3PoolGradWWidth is Conv3x3PoolGradW in the form of width (one of
// poolGradWidths).
func conv3x3PoolGradWWidth(width int, dw, db, x, dy []float32, where []uint8, n, cin, cout, h, wd, co0, co1 int, scratch []float32) bool {
	if !sparseFits(width, cin, h, wd) || n < 1 || co0 < 0 || co1 <= co0 || co1 > cout {
		return false
	}
	ohw := h / 2 * wd / 2
	_, _, _ = dw[cout*cin*9-1], db[cout-1], x[n*cin*h*wd-1]
	_, _ = dy[n*cout*ohw-1], where[n*cout*ohw-1]
	_ = scratch[Conv3x3PoolGradWScratch(cin, h, wd, co1-co0)-1]
	C.latent_conv3x3_pool_grad_w_width(C.int(width), (*C.float)(&dw[0]), (*C.float)(&db[0]), (*C.float)(&x[0]), (*C.float)(&dy[0]), (*C.uint8_t)(&where[0]),
		C.long(n), C.long(cin), C.long(cout), C.long(h), C.long(wd), C.long(co0), C.long(co1), (*C.float)(&scratch[0]))
	return true
}

// Conv3x3PoolGradWScratch is the size of Conv3x3PoolGradW's scratch for
// nco output channels: a sample's padded input with its channels last,
// the channels' sums, and a plane's list of positions.
func Conv3x3PoolGradWScratch(cin, h, wd, nco int) int {
	return (h+2)*(wd+2)*cin + nco*9*cin + 3*(h/2*(wd/2)+C.LATENT_LIST_SLACK)
}

// Conv3x3PoolGradX computes samples [s0, s1) of the input gradient dx [n,
// cin, h, wd] of Conv3x3PoolGradW's convolution, ReLU and pooling, from
// its weights w [cout, cin, 3, 3], dy and where, without the dense dz:
// the bits of Conv3x3Ref's convolution of that dz by w flipped (its rows
// and columns reversed, its channels swapped) where w is finite. h and wd
// are even, cin a multiple of 16; scratch is the caller's, at least
// Conv3x3PoolGradXScratch(cin, cout, h, wd) values, overwritten. Its
// AVX-512 and AVX2 forms give the same bits; it reports false, doing
// nothing, where the CPU has neither.
func Conv3x3PoolGradX(dx, w, dy []float32, where []uint8, s0, s1, cin, cout, h, wd int, scratch []float32) bool {
	return conv3x3PoolGradXWidth(sparseWidth(), dx, w, dy, where, s0, s1, cin, cout, h, wd, scratch)
}

// conv3x3PoolGradXWidth is Conv3x3PoolGradX in the form of width (one of
// poolGradWidths).
func conv3x3PoolGradXWidth(width int, dx, w, dy []float32, where []uint8, s0, s1, cin, cout, h, wd int, scratch []float32) bool {
	if !sparseFits(width, cin, h, wd) || cout < 1 || s0 < 0 || s1 <= s0 {
		return false
	}
	ohw := h / 2 * wd / 2
	_, _ = dx[s1*cin*h*wd-1], w[cout*cin*9-1]
	_, _ = dy[s1*cout*ohw-1], where[s1*cout*ohw-1]
	_ = scratch[Conv3x3PoolGradXScratch(cin, cout, h, wd)-1]
	C.latent_conv3x3_pool_grad_x_width(C.int(width), (*C.float)(&dx[0]), (*C.float)(&w[0]), (*C.float)(&dy[0]), (*C.uint8_t)(&where[0]),
		C.long(s0), C.long(s1), C.long(cin), C.long(cout), C.long(h), C.long(wd), (*C.float)(&scratch[0]))
	return true
}

// Conv3x3PoolGradXScratch is the size of Conv3x3PoolGradX's scratch: the
// weights with their input channels last, a sample's padded dx with its
// channels last, and a plane's list of positions.
func Conv3x3PoolGradXScratch(cin, cout, h, wd int) int {
	return cout*9*cin + (h+2)*(wd+2)*cin + 3*(h/2*(wd/2)+C.LATENT_LIST_SLACK)
}

// Conv3x3PoolGradSparseFits reports whether Conv3x3PoolGradW and
// Conv3x3PoolGradX take cin input channels and planes of h×wd on this CPU.
func Conv3x3PoolGradSparseFits(cin, h, wd int) bool { return sparseFits(sparseWidth(), cin, h, wd) }

// sparseFits is Conv3x3PoolGradSparseFits for the form of width.
func sparseFits(width, cin, h, wd int) bool {
	return width != 0 && cin >= 16 && cin%16 == 0 && h >= 2 && wd >= 2 && h%2 == 0 && wd%2 == 0
}

// Conv3x3GradWFits reports whether Conv3x3GradW takes cout output
// channels on this CPU.
func Conv3x3GradWFits(cout int) bool { return DirectConv && cout >= 16 && cout%16 == 0 }

// Conv3x3GradWScratch is the size of Conv3x3GradW's scratch for nci input
// channels: the sums of their weights, and a sample's padded planes.
func Conv3x3GradWScratch(nci, cout, h, wd int) int { return nci*9*cout + nci*(h+2)*(wd+2) }

// Conv3x3GradWRef is Conv3x3GradW's scalar reference, in C for its fused
// multiply-adds (fmaf), on every CPU.
func Conv3x3GradWRef(dw, x, dzT []float32, n, cin, cout, h, wd, ci0, ci1 int) {
	if n*cin*cout*h*wd == 0 || ci1 <= ci0 {
		return
	}
	_, _, _ = dw[cout*cin*9-1], x[n*cin*h*wd-1], dzT[n*cout*h*wd-1]
	C.latent_conv3x3_grad_w_ref((*C.float)(&dw[0]), (*C.float)(&x[0]), (*C.float)(&dzT[0]), C.long(n), C.long(cin), C.long(cout), C.long(h), C.long(wd),
		C.long(ci0), C.long(ci1))
}

// conv3x3Block is latent_conv3x3's block of output channels for rows of wd
// values.
func conv3x3Block(wd int) int {
	if wd > C.LATENT_CONV_ROW-2 {
		return 4
	}
	return 8
}

// conv3x3Fits reports whether latent_conv3x3 takes these sizes with width
// values at a time (the AVX2 form's blocks of 2 and 1 channels divide the
// AVX-512 form's of 8 and 4).
func conv3x3Fits(width, cin, cout, h, wd int) bool {
	nh, cb := 1, conv3x3Block(wd)
	if wd > C.LATENT_CONV_ROW-2 {
		nh = 2
	}
	return width != 0 && wd >= 1 && wd <= 2*C.LATENT_CONV_ROW-2 && h >= 1 && cin >= 1 && cout >= cb && cout%cb == 0 &&
		cin*(h+2)*nh*C.LATENT_CONV_ROW+3*nh*C.LATENT_CONV_ROW <= C.LATENT_CONV_MAX && cout*cin*9 <= C.LATENT_CONV_MAX
}

// Conv3x3Ref is Conv3x3's scalar reference, in C for its fused
// multiply-adds (fmaf), on every CPU.
func Conv3x3Ref(y, x, w []float32, cin, cout, h, wd int) {
	if cin*cout*h*wd == 0 {
		return
	}
	_, _, _ = y[cout*h*wd-1], x[cin*h*wd-1], w[cout*cin*9-1]
	C.latent_conv3x3_ref((*C.float)(&y[0]), (*C.float)(&x[0]), (*C.float)(&w[0]), C.long(cin), C.long(cout), C.long(h), C.long(wd))
}

// Sgemm sets c [m, n] (rows ldc apart) to a·op(b): a is [m, k] (rows lda
// apart), and b is [k, n] (rows ldb apart), or, with transB, [n, k] and
// transposed. Each value is one chain of fused multiply-adds over k in
// order, from zero: the bits of SgemmRef on every CPU with AVX-512, which
// may differ from a BLAS's gemm by rounding. It copies a block of b into a
// 32 KB panel on the C stack and reads a, b and c only, besides writing c.
// It reports false, doing nothing, where the CPU lacks AVX-512.
func Sgemm(transB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) bool {
	if !Vector {
		return false
	}
	if m == 0 || n == 0 {
		return true
	}
	sgemmCheck(transB, m, n, k, a, lda, b, ldb, c, ldc)
	C.latent_sgemm(cBool(transB), C.long(m), C.long(n), C.long(k), sgemmPtr(a, k), C.long(lda), sgemmPtr(b, k), C.long(ldb),
		(*C.float)(&c[0]), C.long(ldc))
	return true
}

// SgemmRef is Sgemm's scalar reference in C: the same sums in the same
// order (fmaf), one value at a time.
func SgemmRef(transB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	sgemmCheck(transB, m, n, k, a, lda, b, ldb, c, ldc)
	C.latent_sgemm_ref(cBool(transB), C.long(m), C.long(n), C.long(k), sgemmPtr(a, k), C.long(lda), sgemmPtr(b, k), C.long(ldb),
		(*C.float)(&c[0]), C.long(ldc))
}

// sgemmCheck panics, as an index out of range, where a, b or c is too
// short for the product.
func sgemmCheck(transB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	_ = c[(m-1)*ldc+n-1]
	if k == 0 {
		return
	}
	_ = a[(m-1)*lda+k-1]
	if transB {
		_ = b[(n-1)*ldb+k-1]
	} else {
		_ = b[(k-1)*ldb+n-1]
	}
}

// sgemmPtr is v's first value, or nil where the product has no terms.
func sgemmPtr(v []float32, k int) *C.float {
	if k == 0 {
		return nil
	}
	return (*C.float)(&v[0])
}

func cBool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}
