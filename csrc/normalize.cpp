#include "normalize.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <type_traits>
#include <vector>

#if defined(__F16C__) || defined(__AVX2__)
#include <immintrin.h>
#endif
#include <omp.h>

namespace affectflow {

namespace {

// Round-to-nearest-even float -> IEEE half (F. Giesen's float_to_half_fast3_rtne).
std::uint16_t float_to_half(float value) {
    std::uint32_t bits;
    std::memcpy(&bits, &value, 4);
    const std::uint32_t sign = bits & 0x80000000u;
    bits ^= sign;
    std::uint16_t half;
    if (bits >= (127u + 16u) << 23) {
        half = bits > (255u << 23) ? 0x7e00 : 0x7c00;  // NaN stays NaN, the rest overflows to inf
    } else if (bits < (113u << 23)) {
        // Subnormal half: float addition of a magic number rounds the mantissa for us.
        const std::uint32_t magic_bits = ((127u - 15u) + (23u - 10u) + 1u) << 23;
        float magic, f;
        std::memcpy(&magic, &magic_bits, 4);
        std::memcpy(&f, &bits, 4);
        f += magic;
        std::uint32_t rounded;
        std::memcpy(&rounded, &f, 4);
        half = static_cast<std::uint16_t>(rounded - magic_bits);
    } else {
        const std::uint32_t mantissa_odd = (bits >> 13) & 1u;
        bits += (static_cast<std::uint32_t>(15 - 127) << 23) + 0xfffu + mantissa_odd;
        half = static_cast<std::uint16_t>(bits >> 13);
    }
    return static_cast<std::uint16_t>(half | (sign >> 16));
}

void store(const float* src, float* dst, long n) { std::memcpy(dst, src, static_cast<std::size_t>(n) * 4); }

void store(const float* src, std::uint16_t* dst, long n) {
    long i = 0;
#if defined(__F16C__)
    for (; i + 8 <= n; i += 8) {
        const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), h);
    }
#endif
    for (; i < n; ++i) dst[i] = float_to_half(src[i]);
}

// scipy.ndimage's default boundary, "reflect": (d c b a | a b c d | d c b a).
long reflect(long i, long n) {
    while (i < 0 || i >= n) i = i < 0 ? -i - 1 : 2 * n - i - 1;
    return i;
}

std::vector<float> window_weights(const NormalizeParams& params) {
    const long radius = params.window / 2;
    std::vector<double> w(static_cast<std::size_t>(2 * radius + 1));
    for (long k = -radius; k <= radius; ++k)
        w[k + radius] = params.method == NormalizationMethod::lcn_gauss
                            ? std::exp(-0.5 * k * k / (params.sigma * params.sigma))
                            : 1.0;
    double total = 0;
    for (double v : w) total += v;
    std::vector<float> weights;
    for (double v : w) weights.push_back(static_cast<float>(v / total));
    return weights;
}

// Scratch buffers of one thread, sized for one image.
struct LocalScratch {
    std::vector<float> padded_row, horizontal, mean, centred, deviation;
    std::vector<const float*> sources;  // the rows a filter pass combines
    std::vector<std::int32_t> padded_pixels, row_sums, window_sums;  // local_mean's integer box sums
};

// One output row: out[x] = sum_k w[k] * rows_k[x]. With the tap count known at compile time
// the k loop unrolls and the x loop vectorizes with all taps in registers (one store per x).
template <long Taps>
void weighted_rows(const float* const* __restrict rows, const float* __restrict w, float* __restrict out, long cols) {
    for (long x = 0; x < cols; ++x) {
        float sum = w[0] * rows[0][x];
        for (long k = 1; k < Taps; ++k) sum += w[k] * rows[k][x];
        out[x] = sum;
    }
}

void weighted_rows_any(const float* const* rows, const float* w, float* __restrict out, long cols, long taps) {
    switch (taps) {
        case 3: return weighted_rows<3>(rows, w, out, cols);
        case 5: return weighted_rows<5>(rows, w, out, cols);
        case 7: return weighted_rows<7>(rows, w, out, cols);
        case 9: return weighted_rows<9>(rows, w, out, cols);
        case 11: return weighted_rows<11>(rows, w, out, cols);
        case 13: return weighted_rows<13>(rows, w, out, cols);
        default: break;
    }
    for (long x = 0; x < cols; ++x) out[x] = w[0] * rows[0][x];
    for (long k = 1; k < taps; ++k)
        for (long x = 0; x < cols; ++x) out[x] += w[k] * rows[k][x];
}

// dst = separable filter of src (rows x cols) with `weights`, reflect boundary (scipy's default).
void separable_filter(const float* __restrict src, float* __restrict dst, long rows, long cols,
                      const std::vector<float>& weights, LocalScratch& scratch) {
    const long taps = static_cast<long>(weights.size());
    const long radius = taps / 2;
    const float* w = weights.data();
    float* __restrict padded = scratch.padded_row.data();
    float* __restrict horizontal = scratch.horizontal.data();
    std::vector<const float*>& sources = scratch.sources;
    sources.resize(static_cast<std::size_t>(taps));
    for (long y = 0; y < rows; ++y) {
        const float* __restrict in = src + y * cols;
        for (long x = 0; x < radius; ++x) {
            padded[x] = in[reflect(x - radius, cols)];
            padded[radius + cols + x] = in[reflect(cols + x, cols)];
        }
        std::memcpy(padded + radius, in, static_cast<std::size_t>(cols) * sizeof(float));
        for (long k = 0; k < taps; ++k) sources[k] = padded + k;  // shifted views of the padded row
        weighted_rows_any(sources.data(), w, horizontal + y * cols, cols, taps);
    }
    for (long y = 0; y < rows; ++y) {
        for (long k = 0; k < taps; ++k) sources[k] = horizontal + reflect(y + k - radius, rows) * cols;
        weighted_rows_any(sources.data(), w, dst + y * cols, cols, taps);
    }
}

void scale_only(const std::uint8_t* in, float* out, long n) {
    constexpr float kScale = 1.0f / 255.0f;
    for (long i = 0; i < n; ++i) out[i] = static_cast<float>(in[i]) * kScale;
}

// Exact integer moments; (x * n - sum) is an exact integer, so one rounding per pixel.
// out[i] = (in[i] * n - sum) * scale. `stream`: non-temporal stores (the output is not read
// again soon, and streaming skips the read-for-ownership of every output cache line).
void centre_and_scale(const std::uint8_t* in, float* out, long n, std::int32_t sum, float scale, bool stream) {
    const std::int32_t n32 = static_cast<std::int32_t>(n);
    long i = 0;
#if defined(__AVX2__)
    if (stream && reinterpret_cast<std::uintptr_t>(out) % 32 == 0) {
        const __m256i count = _mm256_set1_epi32(n32), total = _mm256_set1_epi32(sum);
        const __m256 factor = _mm256_set1_ps(scale);
        for (; i + 8 <= n; i += 8) {
            const __m256i pixels = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(in + i)));
            const __m256i centred = _mm256_sub_epi32(_mm256_mullo_epi32(pixels, count), total);
            _mm256_stream_ps(out + i, _mm256_mul_ps(_mm256_cvtepi32_ps(centred), factor));
        }
    }
#else
    (void)stream;
#endif
    for (; i < n; ++i) out[i] = static_cast<float>(static_cast<std::int32_t>(in[i]) * n32 - sum) * scale;
}

void global_contrast(const std::uint8_t* in, float* out, long n, double eps, bool stream) {
    std::uint32_t sum = 0;
    std::uint64_t sum_squares = 0;
    if (n <= 66051) {  // 66051 * 255^2 < 2^32: 32-bit accumulators vectorize better
        std::uint32_t s2 = 0;
        for (long i = 0; i < n; ++i) {
            const std::uint32_t v = in[i];
            sum += v;
            s2 += v * v;
        }
        sum_squares = s2;
    } else {
        for (long i = 0; i < n; ++i) {
            const std::uint64_t v = in[i];
            sum += static_cast<std::uint32_t>(v);
            sum_squares += v * v;
        }
    }
    const double mean = static_cast<double>(sum) / n;
    const double variance = std::max(0.0, static_cast<double>(sum_squares) / n - mean * mean);
    const double inv_std = 1.0 / std::max(std::sqrt(variance), eps * 255.0);  // grey-level units
    if (n * 255L < (1L << 24)) {
        centre_and_scale(in, out, n, static_cast<std::int32_t>(sum), static_cast<float>(inv_std / n), stream);
    } else {
        for (long i = 0; i < n; ++i) out[i] = static_cast<float>((in[i] - mean) * inv_std);
    }
}

void local_contrast(const std::uint8_t* in, float* out, long rows, long cols, double eps,
                    const std::vector<float>& weights, LocalScratch& scratch) {
    const long n = rows * cols;
    float* centred = scratch.centred.data();
    float* mean = scratch.mean.data();
    float* deviation = scratch.deviation.data();
    // Work in grey levels (the result is scale free but for eps), about the image's rounded
    // mean: exact integers, so that flat regions stay exactly flat despite float32 weights.
    std::int64_t sum = 0;
    for (long i = 0; i < n; ++i) sum += in[i];
    const std::int32_t offset = static_cast<std::int32_t>((sum + n / 2) / n);
    for (long i = 0; i < n; ++i) centred[i] = static_cast<float>(static_cast<std::int32_t>(in[i]) - offset);
    separable_filter(centred, mean, rows, cols, weights, scratch);
    for (long i = 0; i < n; ++i) {
        centred[i] -= mean[i];
        mean[i] = centred[i] * centred[i];  // reuse: squared deviations
    }
    separable_filter(mean, deviation, rows, cols, weights, scratch);
    // 16 independent partial sums: a vectorizable reduction with a fixed (deterministic) order.
    constexpr long kLanes = 16;
    float partial[kLanes] = {};
    long i = 0;
    for (; i + kLanes <= n; i += kLanes)
        for (long lane = 0; lane < kLanes; ++lane) {
            const float d = std::sqrt(std::max(deviation[i + lane], 0.0f));
            deviation[i + lane] = d;
            partial[lane] += d;
        }
    double total = 0;
    for (; i < n; ++i) {
        deviation[i] = std::sqrt(std::max(deviation[i], 0.0f));
        total += deviation[i];
    }
    for (const float p : partial) total += p;
    const float floor = static_cast<float>(std::max(total / n, eps * 255.0));
    for (long j = 0; j < n; ++j) out[j] = centred[j] / std::max(deviation[j], floor);
}

// The authors' Normer3(filter_size=5) as it ran (cuDNN conv, border_mode=(2, 2)): pixels on
// their [0, 2] scale minus the 5x5 box mean of a zero-padded convolution, so that border windows
// still divide by 25 (the missing pixels count as zeros), and no division (their local std
// ** (1/2) is ** 0 under Python 2). With v the uint8 pixel and S its zero-padded 5x5 box sum,
// 2v/255 - (2S/255)/25 = (25v - S) * 2/(255*25): box sums of uint8 are exact integers, so each
// output is one exact integer times one float32 constant (a single rounding).
void local_mean(const std::uint8_t* in, float* out, long rows, long cols, LocalScratch& scratch) {
    constexpr long kRadius = kLocalMeanWindow / 2;
    constexpr std::int32_t kArea = kLocalMeanWindow * kLocalMeanWindow;
    constexpr float kScale = static_cast<float>(2.0 / (255.0 * kArea));
    std::int32_t* __restrict padded = scratch.padded_pixels.data();  // zeros at both ends, kept from call to call
    std::int32_t* __restrict row_sums = scratch.row_sums.data();
    std::int32_t* __restrict window_sums = scratch.window_sums.data();
    for (long y = 0; y < rows; ++y) {
        const std::uint8_t* __restrict row = in + y * cols;
        for (long x = 0; x < cols; ++x) padded[kRadius + x] = row[x];
        std::int32_t* __restrict sums = row_sums + y * cols;
        for (long x = 0; x < cols; ++x) {  // fixed tap count: unrolls and vectorizes
            std::int32_t sum = 0;
            for (long k = 0; k < kLocalMeanWindow; ++k) sum += padded[x + k];
            sums[x] = sum;
        }
    }
    for (long y = 0; y < rows; ++y) {
        // Rows outside the image are zeros: sum only the ones inside, the divisor stays 25.
        const long first = std::max(0L, y - kRadius), last = std::min(rows - 1, y + kRadius);
        std::memcpy(window_sums, row_sums + first * cols, static_cast<std::size_t>(cols) * sizeof(std::int32_t));
        for (long r = first + 1; r <= last; ++r) {
            const std::int32_t* __restrict sums = row_sums + r * cols;
            for (long x = 0; x < cols; ++x) window_sums[x] += sums[x];
        }
        const std::uint8_t* __restrict row = in + y * cols;
        float* __restrict target = out + y * cols;
        for (long x = 0; x < cols; ++x)
            target[x] = static_cast<float>(kArea * static_cast<std::int32_t>(row[x]) - window_sums[x]) * kScale;
    }
}

template <typename Out>
void normalize_all(const std::uint8_t* chips, long count, long rows, long cols, Out* out,
                   const NormalizeParams& params) {
    if (count < 0 || rows <= 0 || cols <= 0) throw std::invalid_argument("chips must be [N, rows, cols]");
    const bool local = params.method == NormalizationMethod::lcn_box || params.method == NormalizationMethod::lcn_gauss;
    if (local && (params.window < 1 || params.window % 2 == 0 || params.window / 2 >= std::min(rows, cols)))
        throw std::invalid_argument("the local window must be odd and smaller than the chip");
    if (params.method == NormalizationMethod::lcn_gauss && !(params.sigma > 0))
        throw std::invalid_argument("sigma must be positive");
    const std::vector<float> weights = local ? window_weights(params) : std::vector<float>{};
    const long n = rows * cols;
    const int threads = params.threads > 0 ? params.threads : omp_get_max_threads();
#pragma omp parallel num_threads(threads)
    {
        LocalScratch scratch;
        std::vector<float> result;  // float32 staging for float16 output
        if (local) {
            scratch.padded_row.resize(static_cast<std::size_t>(cols + weights.size()));
            for (auto* buffer : {&scratch.horizontal, &scratch.mean, &scratch.centred, &scratch.deviation})
                buffer->resize(static_cast<std::size_t>(n));
        }
        if (params.method == NormalizationMethod::local_mean) {
            scratch.padded_pixels.assign(static_cast<std::size_t>(cols + kLocalMeanWindow - 1), 0);
            scratch.row_sums.resize(static_cast<std::size_t>(n));
            scratch.window_sums.resize(static_cast<std::size_t>(cols));
        }
        if constexpr (!std::is_same_v<Out, float>) result.resize(static_cast<std::size_t>(n));
#pragma omp for schedule(dynamic, 32)  // dynamic: a thread preempted on a busy machine does not hold up the rest
        for (long i = 0; i < count; ++i) {
            const std::uint8_t* in = chips + i * n;
            float* target;
            if constexpr (std::is_same_v<Out, float>) {
                target = out + i * n;  // write float32 results in place, no staging
            } else {
                target = result.data();
            }
            switch (params.method) {
                case NormalizationMethod::none: scale_only(in, target, n); break;
                case NormalizationMethod::gcn:
                    global_contrast(in, target, n, params.eps, std::is_same_v<Out, float>);
                    break;
                case NormalizationMethod::lcn_box:
                case NormalizationMethod::lcn_gauss:
                    local_contrast(in, target, rows, cols, params.eps, weights, scratch);
                    break;
                case NormalizationMethod::local_mean: local_mean(in, target, rows, cols, scratch); break;
            }
            if constexpr (!std::is_same_v<Out, float>) store(target, out + i * n, n);
        }
#if defined(__AVX2__)
        _mm_sfence();  // order this thread's streaming stores before the results are used
#endif
    }
}

}  // namespace

NormalizationMethod parse_normalization(const std::string& name) {
    if (name == "none") return NormalizationMethod::none;
    if (name == "gcn") return NormalizationMethod::gcn;
    if (name == "lcn-box") return NormalizationMethod::lcn_box;
    if (name == "lcn-gauss") return NormalizationMethod::lcn_gauss;
    if (name == "local-mean") return NormalizationMethod::local_mean;
    throw std::invalid_argument("unknown normalization '" + name + "' (none, gcn, lcn-box, lcn-gauss, local-mean)");
}

void normalize_chips(const std::uint8_t* chips, long count, long rows, long cols, float* out,
                     const NormalizeParams& params) {
    normalize_all(chips, count, rows, cols, out, params);
}

void normalize_chips_half(const std::uint8_t* chips, long count, long rows, long cols, std::uint16_t* out,
                          const NormalizeParams& params) {
    normalize_all(chips, count, rows, cols, out, params);
}

}  // namespace affectflow
