// Fused normalization of uint8 face chips to float32 / float16: mean subtraction and
// global or local contrast normalization, one image at a time (cache resident), OpenMP
// over images.
#pragma once

#include <cstdint>
#include <string>

namespace affectflow {

enum class NormalizationMethod {
    none,       // x / 255
    gcn,        // (x - mean) / max(std, eps), per image
    lcn_box,    // (x - local mean) / max(local std, max(mean local std, eps)), box window
    lcn_gauss,  // the same with a Gaussian window
    local_mean, // the authors' Normer3(filter_size=5) as it ran: 2x/255 minus its zero-padded 5x5 box mean
};

// local_mean's window: fixed (the authors' filter_size), NormalizeParams::window does not apply.
constexpr long kLocalMeanWindow = 5;

NormalizationMethod parse_normalization(const std::string& name);

struct NormalizeParams {
    NormalizationMethod method = NormalizationMethod::gcn;
    double eps = 1.0 / 255.0;  // std floor, in units of the [0, 1] intensity scale
    long window = 9;           // lcn window width (odd): box size, or 2 * Gaussian radius + 1
    double sigma = 2.0;        // Gaussian window's standard deviation, pixels
    int threads = 0;           // 0: OpenMP's default
};

// chips: [count, rows, cols] uint8, C-contiguous; out: the same shape.
void normalize_chips(const std::uint8_t* chips, long count, long rows, long cols, float* out,
                     const NormalizeParams& params);
// float16 output as IEEE half bit patterns (numpy's float16), rounded to nearest even.
void normalize_chips_half(const std::uint8_t* chips, long count, long rows, long cols, std::uint16_t* out,
                          const NormalizeParams& params);

}  // namespace affectflow
