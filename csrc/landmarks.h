// dlib's shape predictor (an ensemble of regression trees, Kazemi & Sullivan 2014), evaluated
// from flat arrays: bit-identical landmarks to dlib::shape_predictor, about 3x faster.
#pragma once

#include <cstdint>
#include <istream>
#include <vector>

#include <dlib/image_processing/full_object_detection.h>
#include <dlib/image_processing/shape_predictor.h>

#include "gray_view.h"

namespace affectflow {

class LandmarkPredictor {
public:
    // Reads dlib's shape_predictor serialization (what dlib::serialize(shape_predictor) writes).
    // Throws dlib::serialization_error for a stream that is not one, std::invalid_argument for
    // a model whose trees differ in depth (dlib's trainer never makes one).
    explicit LandmarkPredictor(std::istream& in);

    unsigned long num_parts() const { return static_cast<unsigned long>(initial_shape_.size() / 2); }

    // The landmarks of the face in `box`, exactly as dlib::shape_predictor::operator()(image, box).
    dlib::full_object_detection operator()(const GrayView& image, const dlib::rectangle& box) const;

    // One split node: the tree goes left when features[a] - features[b] > threshold.
    struct Split {
        std::uint32_t a;
        std::uint32_t b;
        float threshold;
    };

private:
    // dlib::impl::extract_feature_pixel_values (the same arithmetic, bit for bit), with the
    // box's transform computed once per face instead of once per cascade level.
    void feature_pixels(const GrayView& image, const dlib::point_transform_affine& to_image,
                        const dlib::matrix<float, 0, 1>& shape, long cascade, std::vector<float>& out) const;

    dlib::matrix<float, 0, 1> initial_shape_;
    long cascades_ = 0;
    long trees_ = 0;       // trees per cascade level
    long splits_ = 0;      // split nodes per tree (2^depth - 1, breadth first as dlib stores them)
    long depth_ = 0;
    long values_ = 0;      // floats per leaf: 2 * parts
    std::vector<Split> nodes_;   // [cascade][tree][split]
    std::vector<float> leaves_;  // [cascade][tree][leaf][values_]
    // Feature pixels, per cascade level: the anchor landmark and the offset from it (in the
    // mean shape's frame).
    std::vector<std::vector<std::uint32_t>> anchors_;  // [cascade][feature]
    std::vector<std::vector<float>> delta_x_;          // [cascade][feature]
    std::vector<std::vector<float>> delta_y_;          // [cascade][feature]
};

}  // namespace affectflow
