#include "landmarks.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace affectflow {

namespace {

bool is_power_of_two(std::size_t n) { return n > 0 && (n & (n - 1)) == 0; }

}  // namespace

LandmarkPredictor::LandmarkPredictor(std::istream& in) {
    // dlib::deserialize(shape_predictor&): version 1, initial shape, forests, anchors, deltas.
    int version = 0;
    dlib::deserialize(version, in);
    if (version != 1)
        throw dlib::serialization_error("Unexpected version found while deserializing dlib::shape_predictor.");
    std::vector<std::vector<dlib::impl::regression_tree>> forests;
    std::vector<std::vector<unsigned long>> anchor_idx;
    std::vector<std::vector<dlib::vector<float, 2>>> deltas;
    dlib::deserialize(initial_shape_, in);
    dlib::deserialize(forests, in);
    dlib::deserialize(anchor_idx, in);
    dlib::deserialize(deltas, in);

    const auto bad = [](const std::string& what) { return dlib::serialization_error("bad shape predictor: " + what); };
    values_ = initial_shape_.size();
    if (values_ < 2 || values_ % 2 != 0) throw bad("initial shape of odd or zero size");
    cascades_ = static_cast<long>(forests.size());
    if (cascades_ == 0 || forests[0].empty() || anchor_idx.size() != forests.size() ||
        deltas.size() != forests.size())
        throw bad("cascade levels, anchors and deltas disagree");
    trees_ = static_cast<long>(forests[0].size());
    splits_ = static_cast<long>(forests[0][0].splits.size());
    if (!is_power_of_two(static_cast<std::size_t>(splits_) + 1)) throw bad("trees are not full binary trees");
    for (long n = splits_ + 1; n > 1; n /= 2) ++depth_;

    const long leaves = splits_ + 1;
    nodes_.reserve(static_cast<std::size_t>(cascades_ * trees_ * splits_));
    leaves_.reserve(static_cast<std::size_t>(cascades_ * trees_ * leaves * values_));
    for (long c = 0; c < cascades_; ++c) {
        const std::size_t features = deltas[c].size();
        if (anchor_idx[c].size() != features) throw bad("anchors and deltas disagree");
        anchors_.emplace_back();
        delta_x_.emplace_back();
        delta_y_.emplace_back();
        for (std::size_t i = 0; i < features; ++i) {
            if (anchor_idx[c][i] >= num_parts()) throw bad("anchor beyond the shape");
            anchors_.back().push_back(static_cast<std::uint32_t>(anchor_idx[c][i]));
            delta_x_.back().push_back(deltas[c][i].x());
            delta_y_.back().push_back(deltas[c][i].y());
        }
        if (static_cast<long>(forests[c].size()) != trees_)
            throw std::invalid_argument("shape predictor with a varying number of trees per cascade level");
        for (const dlib::impl::regression_tree& tree : forests[c]) {
            if (static_cast<long>(tree.splits.size()) != splits_ || static_cast<long>(tree.leaf_values.size()) != leaves)
                throw std::invalid_argument("shape predictor with trees of different depths");
            for (const dlib::impl::split_feature& split : tree.splits) {
                if (split.idx1 >= features || split.idx2 >= features) throw bad("split on a feature it does not have");
                nodes_.push_back({static_cast<std::uint32_t>(split.idx1), static_cast<std::uint32_t>(split.idx2),
                                  split.thresh});
            }
            for (const dlib::matrix<float, 0, 1>& leaf : tree.leaf_values) {
                if (leaf.size() != values_) throw bad("leaf of the wrong size");
                leaves_.insert(leaves_.end(), leaf.begin(), leaf.end());
            }
        }
    }
}

void LandmarkPredictor::feature_pixels(const GrayView& image, const dlib::point_transform_affine& to_image,
                                       const dlib::matrix<float, 0, 1>& shape, long cascade,
                                       std::vector<float>& out) const {
    // dlib: p = tform_to_img(tform * delta + location(shape, anchor)), with tform (float) the
    // similarity from the mean shape to the current one and tform_to_img (double) the box's map;
    // dlib::point rounds as floor(v + 0.5); pixels outside the image read as 0.
    const dlib::matrix<float, 2, 2> tform =
        dlib::matrix_cast<float>(dlib::impl::find_tform_between_shapes(initial_shape_, shape).get_m());
    const float t00 = tform(0, 0), t01 = tform(0, 1), t10 = tform(1, 0), t11 = tform(1, 1);
    const dlib::matrix<double, 2, 2>& m = to_image.get_m();
    const double m00 = m(0, 0), m01 = m(0, 1), m10 = m(1, 0), m11 = m(1, 1);
    const double b0 = to_image.get_b().x(), b1 = to_image.get_b().y();
    const std::uint32_t* const anchors = anchors_[cascade].data();
    const float* const dx = delta_x_[cascade].data();
    const float* const dy = delta_y_[cascade].data();
    const float* const points = &shape(0);
    const std::size_t count = anchors_[cascade].size();
    out.resize(count);
    for (std::size_t i = 0; i < count; ++i) {
        float x = t00 * dx[i];
        x += t01 * dy[i];
        float y = t10 * dx[i];
        y += t11 * dy[i];
        const double px = x + points[2 * anchors[i]];
        const double py = y + points[2 * anchors[i] + 1];
        const long col = static_cast<long>(std::floor((m00 * px + m01 * py) + b0 + 0.5));
        const long row = static_cast<long>(std::floor((m10 * px + m11 * py) + b1 + 0.5));
        out[i] = (col >= 0 && row >= 0 && col < image.cols && row < image.rows) ? image.row(row)[col] : 0.0f;
    }
}

namespace {

// shape[v] += leaf[v] for every tree's leaf, in tree order (dlib's order: the float sums are
// bit-identical); a compile-time width keeps the shape in registers.
template <long kValues>
void add_leaves(float* shape, const float* leaves, const std::uint32_t* leaf_index, long trees, long values) {
    const long width = kValues > 0 ? kValues : values;
    float sum[kValues > 0 ? kValues : 1];
    float* const acc = kValues > 0 ? sum : shape;
    if (kValues > 0) std::copy(shape, shape + width, acc);
    for (long t = 0; t < trees; ++t) {
        const float* const leaf = leaves + static_cast<std::size_t>(leaf_index[t]) * width;
        for (long v = 0; v < width; ++v) acc[v] += leaf[v];
    }
    if (kValues > 0) std::copy(acc, acc + width, shape);
}

// The leaf each tree of a cascade level reaches (as an index into the level's leaves), with the
// leaf's values prefetched. kDepth: the trees' depth when known at compile time (else `depth`).
template <long kDepth>
void find_leaves(const LandmarkPredictor::Split* nodes, long splits, const float* features, long trees, long leaves,
                 long values, const float* leaf_values, std::uint32_t* leaf_index, long depth = kDepth) {
    constexpr long kLanes = 8;
    const long levels = kDepth > 0 ? kDepth : depth;
    const auto walk = [&](long first, long lanes) {
        long node[kLanes] = {};
        for (long level = 0; level < levels; ++level) {
            for (long g = 0; g < lanes; ++g) {
                const LandmarkPredictor::Split& split = nodes[(first + g) * splits + node[g]];
                // dlib: left child (2i + 1) when f[a] - f[b] > threshold, else right (2i + 2)
                node[g] = 2 * node[g] + 2 - static_cast<long>(features[split.a] - features[split.b] > split.threshold);
            }
        }
        for (long g = 0; g < lanes; ++g) {
            const long leaf = (first + g) * leaves + (node[g] - splits);
            leaf_index[first + g] = static_cast<std::uint32_t>(leaf);
            __builtin_prefetch(leaf_values + leaf * values);
        }
    };
    long first = 0;
    for (; first + kLanes <= trees; first += kLanes) walk(first, kLanes);
    if (first < trees) walk(first, trees - first);
}

}  // namespace

dlib::full_object_detection LandmarkPredictor::operator()(const GrayView& image, const dlib::rectangle& box) const {
    // dlib::shape_predictor::operator(), with the same float operations in the same order.
    dlib::matrix<float, 0, 1> shape = initial_shape_;
    float* const current = &shape(0);
    const dlib::point_transform_affine to_image = dlib::impl::unnormalizing_tform(box);
    std::vector<float> features;
    std::vector<std::uint32_t> leaf_index(static_cast<std::size_t>(trees_));
    const long leaves = splits_ + 1;
    for (long c = 0; c < cascades_; ++c) {
        feature_pixels(image, to_image, shape, c, features);
        const float* const f = features.data();
        const Split* const nodes = nodes_.data() + c * trees_ * splits_;
        const float* const leaf_values = leaves_.data() + c * trees_ * leaves * values_;
        // First every tree's leaf (branch-free walks, eight trees side by side: the CPU overlaps
        // them), fetching the leaves' values meanwhile; then the values are added in tree order.
        if (depth_ == 4)
            find_leaves<4>(nodes, splits_, f, trees_, leaves, values_, leaf_values, leaf_index.data());
        else
            find_leaves<0>(nodes, splits_, f, trees_, leaves, values_, leaf_values, leaf_index.data(), depth_);
        if (values_ == 10)
            add_leaves<10>(current, leaf_values, leaf_index.data(), trees_, values_);
        else
            add_leaves<0>(current, leaf_values, leaf_index.data(), trees_, values_);
    }
    std::vector<dlib::point> parts(num_parts());
    for (unsigned long i = 0; i < parts.size(); ++i) parts[i] = to_image(dlib::impl::location(shape, i));
    return dlib::full_object_detection(box, parts);
}

}  // namespace affectflow
