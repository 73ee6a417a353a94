// A read-only grayscale image over caller-owned memory (a numpy frame), usable by
// dlib's generic image functions without copying the pixels.
#pragma once

#include <cstddef>
#include <cstdint>

#include <dlib/image_processing/generic_image.h>

namespace affectflow {

struct GrayView {
    const std::uint8_t* data = nullptr;
    long rows = 0;
    long cols = 0;
    long stride = 0;  // bytes from one row to the next

    const std::uint8_t* row(long r) const { return data + r * stride; }
};

// dlib's generic image interface, found by argument-dependent lookup.
inline long num_rows(const GrayView& view) { return view.rows; }
inline long num_columns(const GrayView& view) { return view.cols; }
inline std::size_t width_step(const GrayView& view) { return static_cast<std::size_t>(view.stride); }
inline const void* image_data(const GrayView& view) { return view.data; }
// dlib asks for a mutable pointer in some generic code paths that only read.
inline void* image_data(GrayView& view) { return const_cast<std::uint8_t*>(view.data); }

}  // namespace affectflow

namespace dlib {
template <>
struct image_traits<affectflow::GrayView> {
    using pixel_type = unsigned char;
};
template <>
struct image_traits<const affectflow::GrayView> {
    using pixel_type = unsigned char;
};
}  // namespace dlib
