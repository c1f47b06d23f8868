//go:build cgo && amd64

package dots

// The C kernels: AVX-512 with 12×32 values a step (24 accumulators of 16
// lanes) and AVX2 with FMA, 6×16 (12 of 8). Each step loads the k-th
// values of a B panel and broadcasts those of an A panel, one fused
// multiply-add a product, so every dot product is summed over k in order.

/*
#include <immintrin.h>
#include <string.h>

#define LATENT_FMA512(i) \
	x = _mm512_set1_ps(a[i]); \
	c##i##0 = _mm512_fmadd_ps(x, b0, c##i##0); \
	c##i##1 = _mm512_fmadd_ps(x, b1, c##i##1);

#define LATENT_STORE512(i) \
	_mm512_storeu_ps(o + (i)*ld, c##i##0); \
	_mm512_storeu_ps(o + (i)*ld + 16, c##i##1);

// latent_dots_micro512 writes the 12×32 products of a 12-row A panel and a
// 32-row B panel to o, rows ld apart.
__attribute__((target("avx512f")))
static void latent_dots_micro512(const float *ap, const float *bp, long d, float *o, long ld) {
	__m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00,
	       c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00,
	       c60 = c00, c61 = c00, c70 = c00, c71 = c00, c80 = c00, c81 = c00,
	       c90 = c00, c91 = c00, c100 = c00, c101 = c00, c110 = c00, c111 = c00;
	for (long k = 0; k < d; k++) {
		const float *a = ap + 12 * k;
		__m512 b0 = _mm512_loadu_ps(bp + 32 * k), b1 = _mm512_loadu_ps(bp + 32 * k + 16), x;
		LATENT_FMA512(0) LATENT_FMA512(1) LATENT_FMA512(2) LATENT_FMA512(3)
		LATENT_FMA512(4) LATENT_FMA512(5) LATENT_FMA512(6) LATENT_FMA512(7)
		LATENT_FMA512(8) LATENT_FMA512(9) LATENT_FMA512(10) LATENT_FMA512(11)
	}
	LATENT_STORE512(0) LATENT_STORE512(1) LATENT_STORE512(2) LATENT_STORE512(3)
	LATENT_STORE512(4) LATENT_STORE512(5) LATENT_STORE512(6) LATENT_STORE512(7)
	LATENT_STORE512(8) LATENT_STORE512(9) LATENT_STORE512(10) LATENT_STORE512(11)
}

#define LATENT_FMA256(i) \
	x = _mm256_broadcast_ss(a + i); \
	c##i##0 = _mm256_fmadd_ps(x, b0, c##i##0); \
	c##i##1 = _mm256_fmadd_ps(x, b1, c##i##1);

#define LATENT_STORE256(i) \
	_mm256_storeu_ps(o + (i)*ld, c##i##0); \
	_mm256_storeu_ps(o + (i)*ld + 8, c##i##1);

// latent_dots_micro256 writes the 6×16 products of a 6-row A panel and a
// 16-row B panel to o, rows ld apart.
__attribute__((target("avx2,fma")))
static void latent_dots_micro256(const float *ap, const float *bp, long d, float *o, long ld) {
	__m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00,
	       c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
	for (long k = 0; k < d; k++) {
		const float *a = ap + 6 * k;
		__m256 b0 = _mm256_loadu_ps(bp + 16 * k), b1 = _mm256_loadu_ps(bp + 16 * k + 8), x;
		LATENT_FMA256(0) LATENT_FMA256(1) LATENT_FMA256(2)
		LATENT_FMA256(3) LATENT_FMA256(4) LATENT_FMA256(5)
	}
	LATENT_STORE256(0) LATENT_STORE256(1) LATENT_STORE256(2)
	LATENT_STORE256(3) LATENT_STORE256(4) LATENT_STORE256(5)
}

// latent_dots_tile runs a micro-kernel of mr×nr over every pair of panels:
// c[i*ldc+j] for i < m, j < n. Whole micro-tiles are written in place,
// edge ones through a buffer.
static void latent_dots_tile(int wide, const float *ap, long m, const float *bp, long n, long d, float *c, long ldc) {
	long mr = wide ? 12 : 6, nr = wide ? 32 : 16;
	float buf[12 * 32];
	for (long j0 = 0; j0 < n; j0 += nr) {
		const float *b = bp + j0 * d;
		for (long i0 = 0; i0 < m; i0 += mr) {
			const float *a = ap + i0 * d;
			int whole = i0 + mr <= m && j0 + nr <= n;
			float *o = whole ? c + i0 * ldc + j0 : buf;
			long ld = whole ? ldc : nr;
			if (wide) {
				latent_dots_micro512(a, b, d, o, ld);
			} else {
				latent_dots_micro256(a, b, d, o, ld);
			}
			if (!whole) {
				long rows = m - i0 < mr ? m - i0 : mr, cols = n - j0 < nr ? n - j0 : nr;
				for (long r = 0; r < rows; r++) {
					memcpy(c + (i0 + r) * ldc + j0, buf + r * nr, cols * sizeof(float));
				}
			}
		}
	}
}

static int latent_dots_have512(void) {
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx512f");
}

static int latent_dots_have256(void) {
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
*/
import "C"

var (
	avx512 = Kernel{Name: "avx512", MR: 12, NR: 32, tile: func(ap []float32, m int, bp []float32, n, d int, c []float32, ldc int) {
		C.latent_dots_tile(1, (*C.float)(&ap[0]), C.long(m), (*C.float)(&bp[0]), C.long(n), C.long(d), (*C.float)(&c[0]), C.long(ldc))
	}}
	avx2 = Kernel{Name: "avx2", MR: 6, NR: 16, tile: func(ap []float32, m int, bp []float32, n, d int, c []float32, ldc int) {
		C.latent_dots_tile(0, (*C.float)(&ap[0]), C.long(m), (*C.float)(&bp[0]), C.long(n), C.long(d), (*C.float)(&c[0]), C.long(ldc))
	}}
	vector = func() (ks []Kernel) {
		if C.latent_dots_have512() != 0 {
			ks = append(ks, avx512)
		}
		if C.latent_dots_have256() != 0 {
			ks = append(ks, avx2)
		}
		return ks
	}()
)

func vectorKernels() []Kernel { return vector }
