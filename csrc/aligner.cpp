#include "aligner.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>
#include <fstream>
#include <iterator>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <thread>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

namespace affectflow {

namespace {

constexpr double kPi = 3.14159265358979323846;
// While no face is found, searches of the whole frame run downscaled to the last face's size
// (see detect), and every kFullSearchEvery-th search in a row at full resolution with the whole
// image pyramid (any face from the detector's smallest, about 80 px).
constexpr long kFullSearchEvery = 5;
// The search region around a tracked face, in detector-box widths.
constexpr double kSearchRegion = 1.6;
// ... searched at a scale where the tracked face's detector box is about this wide, by the
// detector limited to the first kSizedLevels levels of its image pyramid: dlib's frontal face
// boxes are about 73 px wide at the first level and 88 px at the second (levels shrink by 5/6),
// so a face that changed size by -10 %..+15 % since the last detection is found, at about a
// third of the cost of the whole pyramid.
constexpr double kRegionFaceWidth = 84.0;
constexpr long kSizedLevels = 2;
// dlib's HOG window is 80x80 pixels: smaller images cannot hold a face.
constexpr long kMinSearchSide = 80;
// While no face is found, the detector runs on every kLostSearchEvery-th frame at first, and
// less often the longer the face stays away, down to every kLostSearchMaxEvery-th frame.
constexpr long kLostSearchEvery = 3;
constexpr long kLostSearchMaxEvery = 12;
// A segment that starts without a track first searches this many face widths around where the
// face was at the end of the previous batch.
constexpr double kHintRegion = 3.0;
// Segments shorter than this are not worth a thread (each starts with a detection).
constexpr long kMinSegmentFrames = 16;
// A detection around the tracked face is the tracked person when its box overlaps the box where
// the detector is expected to put that face by at least this much (intersection over union).
constexpr double kSameFaceOverlap = 0.3;

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

double centre_x(const dlib::rectangle& box) { return static_cast<double>(box.left() + box.right()) / 2.0; }

// Intersection over union of two boxes.
double overlap(const dlib::rectangle& a, const dlib::rectangle& b) {
    const double common = static_cast<double>(a.intersect(b).area());
    const double either = static_cast<double>(a.area()) + static_cast<double>(b.area()) - common;
    return either > 0 ? common / either : 0.0;
}

// The detection `rule` picks among one frame's detections (none when there are none): the best
// score, or the leftmost / rightmost box centre (equal centres: the better score).
std::optional<Detection> choose_face(const std::vector<Detection>& detections, FaceRule rule) {
    if (detections.empty()) return std::nullopt;
    const auto preferred = [rule](const Detection& a, const Detection& b) {
        const double ax = centre_x(a.box), bx = centre_x(b.box);
        if (rule == FaceRule::left && ax != bx) return ax < bx;
        if (rule == FaceRule::right && ax != bx) return ax > bx;
        return a.score > b.score;
    };
    return *std::min_element(detections.begin(), detections.end(), preferred);
}

// The tracked person among the detections around it: the one overlapping `expected` (where the
// detector would box the tracked face) most, by at least kSameFaceOverlap; none when none does.
std::optional<Detection> same_face(const std::vector<Detection>& detections, const dlib::rectangle& expected) {
    std::optional<Detection> same;
    double most = kSameFaceOverlap;
    for (const Detection& detection : detections) {
        const double o = overlap(detection.box, expected);
        if (o >= most) {
            most = o;
            same = detection;
        }
    }
    return same;
}

// The detection whose box centre is nearest `centre` (none when there are none).
std::optional<Detection> nearest_face(const std::vector<Detection>& detections, const dlib::dpoint& centre) {
    const auto distance = [&centre](const Detection& d) {
        return dlib::length(dlib::dpoint(dlib::center(d.box)) - centre);
    };
    const auto nearest = std::min_element(detections.begin(), detections.end(), [&](const auto& a, const auto& b) {
        return distance(a) < distance(b);
    });
    if (nearest == detections.end()) return std::nullopt;
    return *nearest;
}

double angle_difference(double a, double b) {
    double d = std::fmod(a - b, 2 * kPi);
    if (d > kPi) d -= 2 * kPi;
    if (d < -kPi) d += 2 * kPi;
    return d;
}

}  // namespace

namespace {

// OpenCV's fixed-point weights of COLOR_BGR2GRAY (15 fractional bits, rounded).
constexpr std::uint32_t kGrayB = 3735, kGrayG = 19235, kGrayR = 9798, kGrayShift = 15;

void bgr_to_gray_scalar(const std::uint8_t* bgr, std::uint8_t* gray, long pixels) {
    for (long i = 0; i < pixels; ++i) {
        const std::uint32_t b = bgr[3 * i], g = bgr[3 * i + 1], r = bgr[3 * i + 2];
        gray[i] = static_cast<std::uint8_t>((b * kGrayB + g * kGrayG + r * kGrayR + (1u << (kGrayShift - 1))) >>
                                            kGrayShift);
    }
}

#if defined(__AVX2__)
// The b, g and r bytes of 16 BGR pixels (48 bytes), each channel as 16 bytes.
struct Channels16 {
    __m128i b, g, r;
};

Channels16 deinterleave16(const std::uint8_t* bgr) {
    // Byte k of channel c comes from byte 3k + c of the 48: in the first, second or third 16 bytes.
    alignas(16) static constexpr std::int8_t kPick[3][3][16] = {
        {{0, 3, 6, 9, 12, 15, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1},
         {-1, -1, -1, -1, -1, -1, 2, 5, 8, 11, 14, -1, -1, -1, -1, -1},
         {-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 1, 4, 7, 10, 13}},
        {{1, 4, 7, 10, 13, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1},
         {-1, -1, -1, -1, -1, 0, 3, 6, 9, 12, 15, -1, -1, -1, -1, -1},
         {-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 2, 5, 8, 11, 14}},
        {{2, 5, 8, 11, 14, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1},
         {-1, -1, -1, -1, -1, 1, 4, 7, 10, 13, -1, -1, -1, -1, -1, -1},
         {-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 3, 6, 9, 12, 15}},
    };
    const __m128i v[3] = {_mm_loadu_si128(reinterpret_cast<const __m128i*>(bgr)),
                          _mm_loadu_si128(reinterpret_cast<const __m128i*>(bgr + 16)),
                          _mm_loadu_si128(reinterpret_cast<const __m128i*>(bgr + 32))};
    const auto channel = [&v](int c) {
        __m128i out = _mm_setzero_si128();
        for (int part = 0; part < 3; ++part)
            out = _mm_or_si128(out, _mm_shuffle_epi8(v[part], _mm_load_si128(
                                                                 reinterpret_cast<const __m128i*>(kPick[c][part]))));
        return out;
    };
    return {channel(0), channel(1), channel(2)};
}
#endif

}  // namespace

// OpenCV's COLOR_BGR2GRAY for 8-bit images, bit-exact: (b*3735 + g*19235 + r*9798 + 2^14) >> 15.
void bgr_to_gray(const std::uint8_t* bgr, std::uint8_t* gray, long pixels) {
    long done = 0;
#if defined(__AVX2__)
    // 32 pixels at a time: (b, g) and (r, 1) as 16-bit pairs, multiplied and summed in pairs
    // (pmaddwd) by (kGrayB, kGrayG) and (kGrayR, 2^14): the scalar formula's integers exactly.
    const __m256i weights_bg = _mm256_set1_epi32(static_cast<int>((kGrayG << 16) | kGrayB));
    const __m256i weights_r1 = _mm256_set1_epi32(static_cast<int>((1u << (kGrayShift - 1)) << 16 | kGrayR));
    const __m256i ones = _mm256_set1_epi8(1);
    const __m256i zero = _mm256_setzero_si256();
    // 8 (b, g) byte pairs and 8 (r, 1) byte pairs per lane -> 8 gray values as int16 per lane.
    const auto eight = [&](__m256i bg, __m256i r1) {
        const __m256i low = _mm256_add_epi32(_mm256_madd_epi16(_mm256_unpacklo_epi8(bg, zero), weights_bg),
                                             _mm256_madd_epi16(_mm256_unpacklo_epi8(r1, zero), weights_r1));
        const __m256i high = _mm256_add_epi32(_mm256_madd_epi16(_mm256_unpackhi_epi8(bg, zero), weights_bg),
                                              _mm256_madd_epi16(_mm256_unpackhi_epi8(r1, zero), weights_r1));
        return _mm256_packs_epi32(_mm256_srli_epi32(low, kGrayShift), _mm256_srli_epi32(high, kGrayShift));
    };
    for (; done + 32 <= pixels; done += 32) {
        const Channels16 first = deinterleave16(bgr + 3 * done), second = deinterleave16(bgr + 3 * done + 48);
        // Every operation below stays within its 128-bit lane: lane 0 holds pixels 0-15, lane 1 16-31.
        const __m256i b = _mm256_set_m128i(second.b, first.b);
        const __m256i g = _mm256_set_m128i(second.g, first.g);
        const __m256i r = _mm256_set_m128i(second.r, first.r);
        const __m256i y = _mm256_packus_epi16(eight(_mm256_unpacklo_epi8(b, g), _mm256_unpacklo_epi8(r, ones)),
                                              eight(_mm256_unpackhi_epi8(b, g), _mm256_unpackhi_epi8(r, ones)));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(gray + done), y);
    }
#endif
    bgr_to_gray_scalar(bgr + 3 * done, gray + done, pixels - done);
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

// The same detector searching only the first kSizedLevels levels of its image pyramid: for a face
// of about known size, in an image scaled to put it at those levels.
const dlib::frontal_face_detector& sized_detector_prototype() {
    static const dlib::frontal_face_detector prototype = [] {
        const dlib::frontal_face_detector& full = detector_prototype();
        dlib::frontal_face_detector::image_scanner_type scanner;  // not copyable: copy its configuration
        scanner.copy_configuration(full.get_scanner());
        scanner.set_max_pyramid_levels(static_cast<unsigned long>(kSizedLevels));
        std::vector<dlib::frontal_face_detector::feature_vector_type> weights;
        for (unsigned long i = 0; i < full.num_detectors(); ++i) weights.push_back(full.get_w(i));
        return dlib::frontal_face_detector(scanner, full.get_overlap_tester(), weights);
    }();
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

FaceRule parse_face_rule(const std::string& name) {
    for (std::size_t i = 0; i < std::size(kFaceRuleNames); ++i)
        if (name == kFaceRuleNames[i]) return static_cast<FaceRule>(i);
    throw std::invalid_argument("unknown face rule '" + name + "' (best, left, right)");
}

const char* face_rule_name(FaceRule rule) { return kFaceRuleNames[static_cast<std::size_t>(rule)]; }

namespace {

AlignerOptions validated(const AlignerOptions& options) {
    if (options.chip_size < 8) throw std::invalid_argument("chip_size must be at least 8");
    if (static_cast<std::size_t>(options.face_rule) >= std::size(kFaceRuleNames))
        throw std::invalid_argument("unknown face rule");
    if (options.padding < 0) throw std::invalid_argument("padding must not be negative");
    if (options.detect_every < 1) throw std::invalid_argument("detect_every must be at least 1");
    if (options.threads < 1) throw std::invalid_argument("threads must be at least 1");
    return options;
}

LandmarkPredictor load_predictor(const std::string& path) {
    std::ifstream file(path, std::ios::binary);
    if (!file) throw std::invalid_argument(path + ": landmark model not found or unreadable");
    std::optional<LandmarkPredictor> predictor;
    try {
        predictor.emplace(file);
    } catch (const dlib::serialization_error& error) {
        throw std::invalid_argument(path + ": not a dlib shape predictor (" + error.what() + ")");
    } catch (const std::bad_alloc&) {
        throw std::invalid_argument(path + ": not a dlib shape predictor (implausible sizes)");
    } catch (const std::invalid_argument& error) {
        throw std::invalid_argument(path + ": " + error.what());
    }
    if (predictor->num_parts() != 5 && predictor->num_parts() != 68)
        throw std::invalid_argument(path + ": landmark model has " + std::to_string(predictor->num_parts()) +
                                    " points; 5 or 68 are supported");
    return std::move(*predictor);
}

// While no face is found, the detector runs on every lost_search_interval(n)-th frame after the
// n-th failed search in a row: every 3rd frame at first, then less and less often, up to every
// kLostSearchMaxEvery-th frame (the frames in between are reached by tracking a returning face
// backwards, so only a face that comes and goes within one interval is missed).
long lost_search_interval(long failed_searches) {
    return std::min(kLostSearchMaxEvery, kLostSearchEvery - 1 + std::max(1L, failed_searches));
}

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

}  // namespace

Aligner::Aligner(const std::string& predictor_path, AlignerOptions options)
    : options_(validated(options)), predictor_(load_predictor(predictor_path)) {
    workers_.resize(static_cast<std::size_t>(options_.threads));
    for (Worker& worker : workers_) {  // one copy each: detectors are not thread-safe
        worker.detector = detector_prototype();
        worker.sized_detector = sized_detector_prototype();
    }
}

void Aligner::process(const FrameBatch& frames, const AlignOutput& out, bool continue_track) {
    const std::lock_guard<std::mutex> lock(busy_);
    if (!continue_track) carry_ = TrackState{};
    const long count = frames.count;
    if (count <= 0) return;
    const long segments =
        std::max(1L, std::min<long>(options_.threads, options_.tracking ? count / kMinSegmentFrames : count));
    std::vector<TrackState> states(static_cast<std::size_t>(segments));
    states[0] = carry_;
    for (long s = 1; s < segments; ++s) {
        // Later segments start without a track: where the face last was, and its size, guide the
        // first search (around the old place, then the whole frame downscaled).
        states[s].face_width = carry_.face_width;
        states[s].split_x = carry_.split_x;
        if (options_.tracking && carry_.valid) states[s].hint = predicted_box(carry_, 1.0, 1.0);
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
    // left/right: a segment that started without knowing where the other person is may have taken
    // them for the chosen one (the only face in view). Where the segment before it learned where the
    // two are, it is aligned again continuing that segment's track, as one thread would have. The
    // counters are the output's: segment s ran on worker s alone, so its first alignment's counts are
    // dropped and the second one's kept (see detections_run in aligner.h).
    for (long s = 1; s < segments; ++s) {
        if (!states[s].unchecked_pick || !states[s - 1].split_x) continue;
        TrackState state = states[s - 1];
        state.unchecked_pick = false;
        Worker& worker = workers_[static_cast<std::size_t>(s)];
        worker.detections_run = worker.region_searches = worker.frame_searches = 0;
        align_segment(worker, frames, count * s / segments, count * (s + 1) / segments, state, out);
        states[s] = std::move(state);
    }
    for (const Worker& worker : workers_) {
        detections_run_ += worker.detections_run;
        region_searches_ += worker.region_searches;
        frame_searches_ += worker.frame_searches;
    }
    carry_ = states.back();
}

void Aligner::align_segment(Worker& worker, const FrameBatch& frames, long begin, long end, TrackState& state,
                            const AlignOutput& out) const {
    // While no face is found, the detector skips frames (lost_search_interval; never the last
    // frame of the segment); when it finds the face again, the frames passed over since the last
    // failed search are tracked backwards from it, so a returning face is not picked up late.
    long last_search = begin - 1;
    for (long t = begin; t < end; ++t) {
        if (options_.tracking && !state.valid && state.failed_detections > 0 && t + 1 < end &&
            t - last_search < lost_search_interval(state.failed_detections)) {
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
                write_found(t, chip, shape, FaceSource::tracked, kNaN, out);
                continue;
            }
            // Lost: fall through to a detection on this very frame.
        }

        out.detected[t] = true;
        const bool was_lost = !state.valid && state.failed_detections > 0;
        const long previous_search = last_search;
        last_search = t;
        const std::optional<Detection> detection = detect(worker, image, state);
        if (!detection) {
            state.valid = false;
            ++state.failed_detections;
            write_missing(t, out);
            continue;
        }
        const dlib::full_object_detection shape = predictor_(image, detection->box);
        const FaceChip chip = face_chip(image, shape, options_.chip_size, options_.padding);
        start_track(state, *detection, shape, chip);
        write_found(t, chip, shape, FaceSource::detected, static_cast<float>(detection->score), out);
        if (was_lost) track_backwards(worker, frames, t, previous_search, state, out);
    }
}

void Aligner::start_track(TrackState& state, const Detection& detection, const dlib::full_object_detection& shape,
                          const FaceChip& chip) const {
    // Remember where the detector's box sits relative to the chip, in the chip's frame.
    const dlib::rectangle& box = detection.box;
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
    state.hint.reset();
    state.reference_chip.assign(&chip.pixels[0][0], &chip.pixels[0][0] + chip.pixels.size());
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
            write_found(t, chip, shape, FaceSource::tracked, kNaN, out);
            continue;
        }
        // Tracking back failed (a face half out of the frame, say): the detector decides, as it
        // would have without skipping.
        out.detected[t] = true;
        const std::optional<Detection> detection = detect(worker, image, back);
        if (!detection) return;
        back.shape = predictor_(image, detection->box);
        const FaceChip detected = face_chip(image, back.shape, options_.chip_size, options_.padding);
        back.chip = detected.details;
        write_found(t, detected, back.shape, FaceSource::detected, static_cast<float>(detection->score), out);
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

std::optional<Detection> Aligner::detect(Worker& worker, const GrayView& image, TrackState& state) const {
    ++worker.detections_run;
    // Faces known to be large are searched in a downscaled image (HOG cost goes with the pixel count).
    const double scale = options_.tracking && state.face_width > 0
                             ? std::min(1.0, options_.detect_face_width / state.face_width)
                             : 1.0;
    if (options_.tracking && (state.valid || state.hint) && !state.unverified) {
        // Search first around the tracked face (or where it last was): a fraction of the frame,
        // at a scale where the face is about kRegionFaceWidth wide. The region may hold part of
        // another face, and left or right among its faces is not left or right in the frame: the
        // detection taken is the tracked person's (the one overlapping the box where the detector
        // would put the tracked face), or the one nearest where the face was at the last batch's end.
        dlib::rectangle region;
        dlib::rectangle expected;
        double face_width = 0;
        const bool tracked = state.valid;
        if (tracked) {
            const double side = std::max(state.box_width, state.box_height) * kSearchRegion;
            region = predicted_box(state, side / state.box_width, side / state.box_height);
            expected = predicted_box(state, 1.0, 1.0);
            face_width = state.box_width * state.chip.rect.width();
        } else {
            expected = *state.hint;
            state.hint.reset();  // one look: afterwards the whole frame is searched
            const double side = std::max(expected.width(), expected.height()) * kHintRegion;
            region = dlib::centered_rect(dlib::center(expected), std::lround(side), std::lround(side));
            face_width = static_cast<double>(expected.width());
        }
        region = region.intersect(dlib::get_rect(image));
        const double region_scale = std::min(1.0, kRegionFaceWidth / std::max(1.0, face_width));
        ++worker.region_searches;
        if (!region.is_empty()) {
            const std::vector<Detection> found =
                search(worker, worker.sized_detector, sub_view(image, region), region_scale, region.tl_corner());
            const std::optional<Detection> same =
                tracked ? same_face(found, expected) : nearest_face(found, dlib::dpoint(dlib::center(expected)));
            if (same) return same;
        }
    }
    ++worker.frame_searches;
    if (scale < 0.9) {
        // The whole frame, downscaled so that a face of the last size is found by the sized
        // detector (faces from about 0.9x to 1.2x that size) ...
        const std::vector<Detection> found = search(worker, worker.sized_detector, image, scale, dlib::point(0, 0));
        if (auto chosen = choose_in_frame(found, state)) return chosen;
        // ... and on every kFullSearchEvery-th search in a row without a face, at full resolution
        // with the whole pyramid: a face that came back at another size (from the detector's
        // smallest, about 80 px).
        if ((state.failed_detections + 1) % kFullSearchEvery != 0) return std::nullopt;
    }
    return choose_in_frame(search(worker, worker.detector, image, 1.0, dlib::point(0, 0)), state);
}

std::optional<Detection> Aligner::choose_in_frame(const std::vector<Detection>& detections, TrackState& state) const {
    const FaceRule rule = options_.face_rule;
    const std::optional<Detection> chosen = choose_face(detections, rule);
    if (!chosen || rule == FaceRule::best) return chosen;
    const double x = centre_x(chosen->box);
    if (detections.size() == 1) {
        // One face: while the chosen person is gone (turned away, covered, out of the frame), the
        // other one would be the leftmost (rightmost) face; a face on the other person's side of
        // where the two were last seen apart is taken for the other person.
        if (!state.split_x) {
            state.unchecked_pick = state.unverified = true;
            return chosen;
        }
        if (rule == FaceRule::left ? x > *state.split_x : x < *state.split_x) return std::nullopt;
        state.unverified = false;
        return chosen;
    }
    // Two faces or more: the rule decides; the column halfway to the nearest other face divides them.
    std::vector<double> xs;
    xs.reserve(detections.size());
    for (const Detection& detection : detections) xs.push_back(centre_x(detection.box));
    std::sort(xs.begin(), xs.end());
    state.split_x = rule == FaceRule::left ? (xs[0] + xs[1]) / 2.0 : (xs[xs.size() - 1] + xs[xs.size() - 2]) / 2.0;
    state.unverified = false;
    return chosen;
}

std::vector<Detection> Aligner::search(Worker& worker, dlib::frontal_face_detector& detector, const GrayView& image,
                                       double scale, const dlib::point& origin) {
    worker.detections.clear();
    double sx = 1.0, sy = 1.0;
    const long rows = std::lround(image.rows * scale), cols = std::lround(image.cols * scale);
    if (scale < 0.9 && rows >= kMinSearchSide && cols >= kMinSearchSide) {
        worker.small.set_size(rows, cols);
        dlib::resize_image(image, worker.small);
        detector(worker.small, worker.detections, 0.0);
        // resize_image maps pixel centres: image x = small x * (cols_in - 1) / (cols_out - 1)
        sx = (image.cols - 1) / static_cast<double>(std::max(1L, cols - 1));
        sy = (image.rows - 1) / static_cast<double>(std::max(1L, rows - 1));
    } else {
        if (image.rows < kMinSearchSide || image.cols < kMinSearchSide) return {};
        detector(image, worker.detections, 0.0);
    }
    // Boxes in the frame: rules that compare positions (left, right) compare them in the frame.
    std::vector<Detection> found;
    found.reserve(worker.detections.size());
    for (const dlib::rect_detection& d : worker.detections) {
        const dlib::drectangle& r = d.rect;
        const dlib::rectangle box(origin.x() + std::lround(r.left() * sx), origin.y() + std::lround(r.top() * sy),
                                  origin.x() + std::lround(r.right() * sx), origin.y() + std::lround(r.bottom() * sy));
        found.push_back({box, d.detection_confidence});
    }
    return found;
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
                          FaceSource source, float score, const AlignOutput& out) const {
    const long area = options_.chip_size * options_.chip_size;
    std::memcpy(out.chips + frame * area, &chip.pixels[0][0], static_cast<std::size_t>(area));
    out.found[frame] = true;
    out.source[frame] = static_cast<std::uint8_t>(source);
    out.score[frame] = source == FaceSource::detected ? score : kNaN;
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
    out.source[frame] = static_cast<std::uint8_t>(FaceSource::lost);
    out.score[frame] = kNaN;
    const long parts = landmark_count();
    std::fill(out.landmarks + frame * parts * 2, out.landmarks + (frame + 1) * parts * 2, kNaN);
    std::fill(out.transform + frame * 6, out.transform + (frame + 1) * 6, kNaN);
}

}  // namespace affectflow
