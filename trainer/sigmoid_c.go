//go:build openblas

package trainer

// The openblas build links C already, so on a CPU with AVX-512 its float32
// sigmoid runs sigmoid32's arithmetic 8 values at a time: the same float64
// operations in the same order, rounded the same way, without fused
// multiply-adds (the pragma), the same table, so it gives the same bits
// (TestSigmoidKernelAgrees). The Go function spends most of its time on
// scalar float64 arithmetic and on branches; the output layer's sigmoid was
// about 5% of a training step of the classic model.

/*
#pragma GCC optimize("fp-contract=off")
#include <immintrin.h>
#include <stdint.h>

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

static int latent_sigmoid_vector(void) {
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
}
*/
import "C"

// sigmoidVector is whether the CPU runs the vectorised sigmoid.
var sigmoidVector = C.latent_sigmoid_vector() != 0

// biasSigmoid32 sets v[i] = sigmoid32(v[i] + b).
func biasSigmoid32(v []float32, b float32) {
	j := 0
	if sigmoidVector && len(v) >= 8 {
		j = int(C.latent_sigmoid_avx512((*C.float)(&v[0]), C.long(len(v)), C.float(b), (*C.double)(&exp2Table[0])))
	}
	for i, x := range v[j:] {
		v[j+i] = sigmoid32(x + b)
	}
}
