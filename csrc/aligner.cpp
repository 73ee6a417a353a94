#include "aligner.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>
#include <fstream>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <thread>

namespace affectflow {

namespace {

constexpr double kPi = 3.14159265358979323846;
// While no face is found, a search on the downscaled frame runs every frame, and one at
// full resolution (which also finds much smaller faces) every this many frames.
constexpr long kFullSearchEvery = 5;
// The search region around a tracked face, in detector-box widths.
constexpr double kSearchRegion = 1.6;
// ... searched at a scale where the tracked face is about this wide (HOG window: 80 px).
constexpr double kRegionFaceWidth = 100.0;
// dlib's HOG window is 80x80 pixels: smaller images cannot hold a face.
constexpr long kMinSearchSide = 80;
// While no face is found, the detector runs on every this many frames (see align_segment).
constexpr long kLostSearchEvery = 3;
// Segments shorter than this are not worth a thread (each starts with a detection).
constexpr long kMinSegmentFrames = 16;

// Normalized cross-correlation of two equally sized chips (0 where one is flat).
double chip_correlation(const std::uint8_t* a, const std::uint8_t* b, long n) {
    std::int64_t sa = 0, sb = 0, saa = 0, sbb = 0, sab = 0;
    for (long i = 0; i < n; ++i) {
        const std::int64_t x = a[i], y = b[i];
        sa += x;
        sb += y;
        saa += x * x;
        sbb += y * y;
        sab += x * y;
    }
    const double cov = static_cast<double>(sab) - static_cast<double>(sa) * sb / n;
    const double va = static_cast<double>(saa) - static_cast<double>(sa) * sa / n;
    const double vb = static_cast<double>(sbb) - static_cast<double>(sb) * sb / n;
    if (va <= 0 || vb <= 0) return 0.0;
    return cov / std::sqrt(va * vb);
}

GrayView sub_view(const GrayView& image, const dlib::rectangle& region) {
    GrayView view = image;
    view.data = image.row(region.top()) + region.left();
    view.rows = region.height();
    view.cols = region.width();
    return view;
}

double angle_difference(double a, double b) {
    double d = std::fmod(a - b, 2 * kPi);
    if (d > kPi) d -= 2 * kPi;
    if (d < -kPi) d += 2 * kPi;
    return d;
}

}  // namespace

// OpenCV's COLOR_BGR2GRAY for 8-bit images, bit-exact (fixed point, 15 fractional bits).
void bgr_to_gray(const std::uint8_t* bgr, std::uint8_t* gray, long pixels) {
    for (long i = 0; i < pixels; ++i) {
        const std::uint32_t b = bgr[3 * i], g = bgr[3 * i + 1], r = bgr[3 * i + 2];
        gray[i] = static_cast<std::uint8_t>((b * 3735u + g * 19235u + r * 9798u + (1u << 14)) >> 15);
    }
}

FaceChip face_chip(const GrayView& image, const dlib::full_object_detection& shape, long size, double padding) {
    FaceChip chip;
    chip.details = dlib::get_face_chip_details(shape, static_cast<unsigned long>(size), padding);
    dlib::extract_image_chip(image, chip.details, chip.pixels);
    return chip;
}

void chip_transform(const dlib::chip_details& details, float out[6]) {
    const dlib::point_transform_affine map = dlib::get_mapping_to_chip(details);
    const auto& m = map.get_m();
    const auto& b = map.get_b();
    const double values[6] = {m(0, 0), m(0, 1), b(0), m(1, 0), m(1, 1), b(1)};
    for (int i = 0; i < 6; ++i) out[i] = static_cast<float>(values[i]);
}

// dlib's detector is decoded from a compressed string (about half a second): decode it once,
// and hand out copies (a detector must not be shared between threads).
const dlib::frontal_face_detector& detector_prototype() {
    static const dlib::frontal_face_detector prototype = dlib::get_frontal_face_detector();
    return prototype;
}

std::vector<Detection> detect_faces(const GrayView& image) {
    dlib::frontal_face_detector detector = detector_prototype();
    std::vector<dlib::rect_detection> found;
    detector(image, found, 0.0);
    std::sort(found.begin(), found.end(),
              [](const auto& a, const auto& b) { return a.detection_confidence > b.detection_confidence; });
    std::vector<Detection> result;
    for (const auto& d : found) result.push_back({d.rect, d.detection_confidence});
    return result;
}

Aligner::Aligner(const std::string& predictor_path, AlignerOptions options) : options_(options) {
    if (options_.chip_size < 8) throw std::invalid_argument("chip_size must be at least 8");
    if (options_.padding < 0) throw std::invalid_argument("padding must not be negative");
    if (options_.detect_every < 1) throw std::invalid_argument("detect_every must be at least 1");
    if (options_.threads < 1) throw std::invalid_argument("threads must be at least 1");
    std::ifstream file(predictor_path, std::ios::binary);
    if (!file) throw std::invalid_argument(predictor_path + ": landmark model not found or unreadable");
    try {
        dlib::deserialize(predictor_, file);
    } catch (const std::exception& error) {
        throw std::invalid_argument(predictor_path + ": not a dlib shape predictor (" + error.what() + ")");
    }
    if (predictor_.num_parts() != 5 && predictor_.num_parts() != 68)
        throw std::invalid_argument(predictor_path + ": landmark model has " +
                                    std::to_string(predictor_.num_parts()) + " points; 5 or 68 are supported");
    const dlib::frontal_face_detector& detector = detector_prototype();
    workers_.resize(static_cast<std::size_t>(options_.threads));
    for (Worker& worker : workers_) worker.detector = detector;  // one copy each: not thread-safe
}

void Aligner::process(const FrameBatch& frames, const AlignOutput& out, bool continue_track) {
    const std::lock_guard<std::mutex> lock(busy_);
    if (!continue_track) carry_ = TrackState{};
    const long count = frames.count;
    if (count <= 0) return;
    const long segments =
        std::max(1L, std::min<long>(options_.threads, options_.tracking ? count / kMinSegmentFrames : count));
    std::vector<TrackState> states(static_cast<std::size_t>(segments));
    for (long s = 0; s < segments; ++s) {
        if (s == 0) {
            states[0] = carry_;
        } else {
            states[s].face_width = carry_.face_width;  // a size hint for the first, downscaled, detection
        }
    }
    std::vector<std::exception_ptr> errors(static_cast<std::size_t>(segments));
    for (Worker& worker : workers_) worker.detections_run = worker.region_searches = worker.frame_searches = 0;
    auto run = [&](long s) {
        try {
            align_segment(workers_[s], frames, count * s / segments, count * (s + 1) / segments, states[s], out);
        } catch (...) {
            errors[s] = std::current_exception();
        }
    };
    std::vector<std::thread> pool;
    for (long s = 1; s < segments; ++s) pool.emplace_back(run, s);
    run(0);
    for (std::thread& thread : pool) thread.join();
    for (const auto& error : errors)
        if (error) std::rethrow_exception(error);
    for (const Worker& worker : workers_) {
        detections_run_ += worker.detections_run;
        region_searches_ += worker.region_searches;
        frame_searches_ += worker.frame_searches;
    }
    carry_ = states.back();
}

void Aligner::align_segment(Worker& worker, const FrameBatch& frames, long begin, long end, TrackState& state,
                            const AlignOutput& out) const {
    // While no face is found, the detector runs on every kLostSearchEvery-th frame (and the last
    // of the segment); when it finds the face again, the frames passed over since the last failed
    // search are tracked backwards from it, so a returning face is not picked up late.
    long last_search = begin - 1;
    for (long t = begin; t < end; ++t) {
        if (options_.tracking && !state.valid && state.failed_detections > 0 && t + 1 < end &&
            (t - last_search) % kLostSearchEvery != 0) {
            out.detected[t] = false;
            write_missing(t, out);
            continue;
        }
        const GrayView image = frame_view(frames, t, worker);
        out.detected[t] = false;

        if (options_.tracking && state.valid && state.frames_since_detection + 1 < options_.detect_every) {
            // Track: the previous landmarks place this frame's box where the detector would.
            const dlib::full_object_detection shape = predictor_(image, predicted_box(state, 1.0, 1.0));
            const FaceChip chip = face_chip(image, shape, options_.chip_size, options_.padding);
            if (plausible_step(state, chip, image, shape)) {
                state.shape = shape;
                state.chip = chip.details;
                ++state.frames_since_detection;
                write_found(t, chip, shape, out);
                continue;
            }
            // Lost: fall through to a detection on this very frame.
        }

        dlib::rectangle box;
        out.detected[t] = true;
        const bool was_lost = !state.valid && state.failed_detections > 0;
        const long previous_search = last_search;
        last_search = t;
        if (!detect(worker, image, state, box)) {
            state.valid = false;
            ++state.failed_detections;
            write_missing(t, out);
            continue;
        }
        const dlib::full_object_detection shape = predictor_(image, box);
        const FaceChip chip = face_chip(image, shape, options_.chip_size, options_.padding);
        // Remember where the detector's box sits relative to the chip, in the chip's frame.
        const double width = chip.details.rect.width();
        const dlib::dpoint offset = (dlib::dpoint(dlib::center(box)) - dlib::center(chip.details.rect)) / width;
        state.valid = true;
        state.shape = shape;
        state.chip = chip.details;
        state.detect_angle = chip.details.angle;
        state.box_dx = offset.x();
        state.box_dy = offset.y();
        state.box_width = box.width() / width;
        state.box_height = box.height() / width;
        state.face_width = static_cast<double>(box.width());
        state.frames_since_detection = 0;
        state.failed_detections = 0;
        state.reference_chip.assign(&chip.pixels[0][0], &chip.pixels[0][0] + chip.pixels.size());
        write_found(t, chip, shape, out);
        if (was_lost) track_backwards(worker, frames, t, previous_search, state, out);
    }
}

void Aligner::track_backwards(Worker& worker, const FrameBatch& frames, long found, long searched,
                              const TrackState& state, const AlignOutput& out) const {
    TrackState back = state;
    for (long t = found - 1; t > searched; --t) {
        const GrayView image = frame_view(frames, t, worker);
        const dlib::full_object_detection shape = predictor_(image, predicted_box(back, 1.0, 1.0));
        const FaceChip chip = face_chip(image, shape, options_.chip_size, options_.padding);
        if (plausible_step(back, chip, image, shape)) {
            back.shape = shape;
            back.chip = chip.details;
            write_found(t, chip, shape, out);
            continue;
        }
        // Tracking back failed (a face half out of the frame, say): the detector decides, as it
        // would have without skipping.
        dlib::rectangle box;
        out.detected[t] = true;
        if (!detect(worker, image, back, box)) return;
        back.shape = predictor_(image, box);
        const FaceChip detected = face_chip(image, back.shape, options_.chip_size, options_.padding);
        back.chip = detected.details;
        write_found(t, detected, back.shape, out);
    }
}

GrayView Aligner::frame_view(const FrameBatch& frames, long t, Worker& worker) {
    const long pixels = frames.rows * frames.cols;
    GrayView image;
    image.rows = frames.rows;
    image.cols = frames.cols;
    image.stride = frames.cols;
    if (frames.channels == 3) {
        worker.gray.resize(static_cast<std::size_t>(pixels));
        bgr_to_gray(frames.data + t * pixels * 3, worker.gray.data(), pixels);
        image.data = worker.gray.data();
    } else {
        image.data = frames.data + t * pixels;
    }
    return image;
}

dlib::rectangle Aligner::predicted_box(const TrackState& state, double grow_x, double grow_y) {
    const double width = state.chip.rect.width();
    const double turn = state.chip.angle - state.detect_angle;  // the box offset turns with the face
    const double dx = state.box_dx * std::cos(turn) - state.box_dy * std::sin(turn);
    const double dy = state.box_dx * std::sin(turn) + state.box_dy * std::cos(turn);
    const dlib::dpoint centre = dlib::center(state.chip.rect) + dlib::dpoint(dx, dy) * width;
    return dlib::centered_rect(dlib::point(centre), std::lround(grow_x * state.box_width * width),
                               std::lround(grow_y * state.box_height * width));
}

bool Aligner::detect(Worker& worker, const GrayView& image, TrackState& state, dlib::rectangle& box) const {
    ++worker.detections_run;
    // Faces known to be large are searched in a downscaled image (HOG cost goes with the pixel count).
    const double scale = options_.tracking && state.face_width > 0
                             ? std::min(1.0, options_.detect_face_width / state.face_width)
                             : 1.0;
    if (options_.tracking && state.valid) {
        // While a face is tracked, search first around it: the region is a fraction of the frame.
        const double side = std::max(state.box_width, state.box_height) * kSearchRegion;
        const dlib::rectangle region = predicted_box(state, side / state.box_width, side / state.box_height)
                                           .intersect(dlib::get_rect(image));
        const double region_scale = std::min(1.0, kRegionFaceWidth / (state.box_width * state.chip.rect.width()));
        ++worker.region_searches;
        if (!region.is_empty() && search(worker, sub_view(image, region), region_scale, region.tl_corner(), box))
            return true;
    }
    ++worker.frame_searches;
    if (scale < 0.9) {
        if (search(worker, image, scale, dlib::point(0, 0), box)) return true;
        // Just lost, or a while without a face: also search at full resolution (smaller faces).
        if (!state.valid && state.failed_detections % kFullSearchEvery != 0) return false;
    }
    return search(worker, image, 1.0, dlib::point(0, 0), box);
}

bool Aligner::search(Worker& worker, const GrayView& image, double scale, const dlib::point& origin,
                     dlib::rectangle& box) const {
    worker.detections.clear();
    double sx = 1.0, sy = 1.0;
    const long rows = std::lround(image.rows * scale), cols = std::lround(image.cols * scale);
    if (scale < 0.9 && rows >= kMinSearchSide && cols >= kMinSearchSide) {
        worker.small.set_size(rows, cols);
        dlib::resize_image(image, worker.small);
        worker.detector(worker.small, worker.detections, 0.0);
        // resize_image maps pixel centres: image x = small x * (cols_in - 1) / (cols_out - 1)
        sx = (image.cols - 1) / static_cast<double>(std::max(1L, cols - 1));
        sy = (image.rows - 1) / static_cast<double>(std::max(1L, rows - 1));
    } else {
        if (image.rows < kMinSearchSide || image.cols < kMinSearchSide) return false;
        worker.detector(image, worker.detections, 0.0);
    }
    if (worker.detections.empty()) return false;
    const auto best = std::max_element(
        worker.detections.begin(), worker.detections.end(),
        [](const auto& a, const auto& b) { return a.detection_confidence < b.detection_confidence; });
    const dlib::drectangle r = best->rect;
    box = dlib::rectangle(origin.x() + std::lround(r.left() * sx), origin.y() + std::lround(r.top() * sy),
                          origin.x() + std::lround(r.right() * sx), origin.y() + std::lround(r.bottom() * sy));
    return true;
}

bool Aligner::plausible_step(const TrackState& state, const FaceChip& chip, const GrayView& image,
                             const dlib::full_object_detection& shape) const {
    for (unsigned long i = 0; i < shape.num_parts(); ++i) {
        const dlib::point& p = shape.part(i);
        if (p.x() < 0 || p.y() < 0 || p.x() >= image.cols || p.y() >= image.rows) return false;  // left the frame
    }
    const double width = state.chip.rect.width();
    const double new_width = chip.details.rect.width();
    if (std::abs(new_width / width - 1.0) > options_.max_scale_change) return false;
    if (dlib::length(dlib::center(chip.details.rect) - dlib::center(state.chip.rect)) > options_.max_step * width)
        return false;
    if (std::abs(angle_difference(chip.details.angle, state.chip.angle)) > options_.max_turn_degrees * kPi / 180.0)
        return false;
    const long n = static_cast<long>(chip.pixels.size());
    if (static_cast<long>(state.reference_chip.size()) != n) return false;
    return chip_correlation(&chip.pixels[0][0], state.reference_chip.data(), n) >= options_.min_chip_correlation;
}

void Aligner::write_found(long frame, const FaceChip& chip, const dlib::full_object_detection& shape,
                          const AlignOutput& out) const {
    const long area = options_.chip_size * options_.chip_size;
    std::memcpy(out.chips + frame * area, &chip.pixels[0][0], static_cast<std::size_t>(area));
    out.found[frame] = true;
    const long parts = static_cast<long>(shape.num_parts());
    float* landmarks = out.landmarks + frame * parts * 2;
    for (long i = 0; i < parts; ++i) {
        landmarks[2 * i] = static_cast<float>(shape.part(i).x());
        landmarks[2 * i + 1] = static_cast<float>(shape.part(i).y());
    }
    chip_transform(chip.details, out.transform + frame * 6);
}

void Aligner::write_missing(long frame, const AlignOutput& out) const {
    const long area = options_.chip_size * options_.chip_size;
    std::memset(out.chips + frame * area, 0, static_cast<std::size_t>(area));
    out.found[frame] = false;
    const long parts = landmark_count();
    std::fill(out.landmarks + frame * parts * 2, out.landmarks + (frame + 1) * parts * 2,
              std::numeric_limits<float>::quiet_NaN());
    std::fill(out.transform + frame * 6, out.transform + (frame + 1) * 6, std::numeric_limits<float>::quiet_NaN());
}

}  // namespace affectflow
