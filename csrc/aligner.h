// Face alignment over whole videos: dlib HOG detection, landmark tracking, chip extraction.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <dlib/image_processing/frontal_face_detector.h>
#include <dlib/image_transforms/interpolation.h>

#include "gray_view.h"
#include "landmarks.h"

namespace affectflow {

// Which face a search of the whole frame picks among its detections (affectflow.contracts.FACE_RULES):
// the detector's best score, or the leftmost / rightmost box centre in the full frame (one person of
// two side by side, as Aff-Wild2 annotates NAME_left and NAME_right). Searches around the tracked
// face keep the person being tracked whatever the rule.
enum class FaceRule : std::uint8_t { best, left, right };

FaceRule parse_face_rule(const std::string& name);
const char* face_rule_name(FaceRule rule);
// The rules' names, in FaceRule's order.
inline constexpr const char* kFaceRuleNames[] = {"best", "left", "right"};

struct AlignerOptions {
    long chip_size = 96;
    double padding = 0.25;           // as dlib.get_face_chip(..., padding=0.25)
    FaceRule face_rule = FaceRule::best;
    bool tracking = true;            // false: detect on every frame (the reference path)
    int detect_every = 10;           // while tracking, detect on every K-th frame (1: every frame)
    int threads = 1;
    // Searches of the whole frame while tracking is lost run on a downscaled frame where the
    // last known face box is about this wide (dlib's smallest boxes are ~73 px: faces down to
    // ~0.9x the last size are found); every 5th search in a row also runs at full resolution.
    double detect_face_width = 80.0;
    // Tracking is lost when a tracked frame's chip correlates less than this with the
    // chip of the last detection, or the face jumps, rescales or turns too much.
    double min_chip_correlation = 0.6;
    double max_step = 0.25;          // centre shift per frame, fraction of the chip width
    double max_scale_change = 0.25;  // relative change of the chip width per frame
    double max_turn_degrees = 20.0;  // in-plane rotation change per frame
};

// A batch of C-contiguous uint8 frames: [count, rows, cols] (gray) or [count, rows, cols, 3] (BGR).
struct FrameBatch {
    const std::uint8_t* data = nullptr;
    long count = 0;
    long rows = 0;
    long cols = 0;
    long channels = 1;
};

// Where a frame's face comes from (AlignOutput::source; affectflow.faces.SOURCES names them).
enum class FaceSource : std::uint8_t {
    lost = 0,      // no face in this frame
    detected = 1,  // the face detector found it in this frame
    tracked = 2,   // the landmarks of a neighbouring frame placed it (forwards, or backwards to a returning face)
};

// Caller-owned per-frame outputs (numpy arrays), all with `count` rows.
struct AlignOutput {
    std::uint8_t* chips = nullptr;   // [T, S, S], zeros where not found
    bool* found = nullptr;           // [T]
    bool* detected = nullptr;        // [T] the detector ran on this frame (whether or not it found the face)
    std::uint8_t* source = nullptr;  // [T] FaceSource
    float* score = nullptr;          // [T] the detector's score where source == detected, NaN elsewhere
    float* landmarks = nullptr;      // [T, P, 2] frame pixels (x, y), NaN where not found
    float* transform = nullptr;      // [T, 2, 3] frame -> chip affine map, NaN where not found
};

// What a segment of frames hands to the next frame: the face being tracked.
struct TrackState {
    bool valid = false;
    dlib::full_object_detection shape;
    dlib::chip_details chip;
    // The detector's box relative to the chip rectangle at the last detection (chip-width units),
    // so that tracked boxes look like detector boxes to the shape predictor.
    double box_dx = 0, box_dy = 0, box_width = 0, box_height = 0, detect_angle = 0;
    long frames_since_detection = 0;
    long failed_detections = 0;  // consecutive searches without a face
    double face_width = 0;       // last detector box width in frame pixels (0: unknown)
    // Where the face was some frames earlier (a segment's start: the end of the previous batch):
    // the first search looks around it before searching the whole frame.
    std::optional<dlib::rectangle> hint;
    // left/right rules: the frame column between the chosen person and the nearest other face, from
    // the last search of the whole frame that saw both. A later search that sees one face only, on
    // the other person's side of it, takes it for the other person (the chosen one is not found).
    std::optional<double> split_x;
    // left/right rules: a face was taken for the chosen person while that could not be checked (the
    // only face in view, split_x unknown): Aligner::process may align this segment again ...
    bool unchecked_pick = false;
    // ... and while the tracked face is such a pick, its re-detections search the whole frame (not
    // around it), so that the rule decides as soon as a second face is in view.
    bool unverified = false;
    std::vector<std::uint8_t> reference_chip;
};

// OpenCV's COLOR_BGR2GRAY for 8-bit pixels, bit-exact.
void bgr_to_gray(const std::uint8_t* bgr, std::uint8_t* gray, long pixels);

// Gray-level chip of a face from its landmarks, exactly as dlib.get_face_chip.
struct FaceChip {
    dlib::chip_details details;
    dlib::array2d<unsigned char> pixels;
};
FaceChip face_chip(const GrayView& image, const dlib::full_object_detection& shape, long size, double padding);

// Frame -> chip affine map (2x3, row-major) of a chip.
void chip_transform(const dlib::chip_details& details, float out[6]);

struct Detection {
    dlib::rectangle box;
    double score;
};
// All detections of dlib's HOG frontal face detector (no upsampling, threshold 0), best first;
// the score is dlib's detection_confidence.
std::vector<Detection> detect_faces(const GrayView& image);

class Aligner {
public:
    Aligner(const std::string& predictor_path, AlignerOptions options);

    long landmark_count() const { return static_cast<long>(predictor_.num_parts()); }
    const AlignerOptions& options() const { return options_; }
    // What the detector did for the frames aligned since the last reset(), counted as the outputs
    // stand (a segment aligned again counts its second alignment only): detections_run is the number
    // of frames whose `detected` flag is set, each searched once (around the tracked face or where it
    // last was, then, unless that found it, the whole frame), so
    //   region_searches, frame_searches <= detections_run <= region_searches + frame_searches
    // and detections_run <= the frames processed.
    long detections_run() const { return detections_run_; }
    long region_searches() const { return region_searches_; }
    long frame_searches() const { return frame_searches_; }
    // The landmark model's points for the face in `box` (as dlib's shape_predictor gives them).
    dlib::full_object_detection landmarks(const GrayView& image, const dlib::rectangle& box) const {
        return predictor_(image, box);
    }

    // Align a batch; with continue_track the first frame continues the previous batch's track.
    // Frames are split into contiguous segments, one thread each; every segment but a
    // continued first one starts with a detection (first around where the previous batch left
    // the face, then in the whole frame). With the left/right rules, a segment whose pick could
    // not be checked is aligned again continuing the previous segment, once that one has learned
    // where the two people are (see TrackState::split_x).
    void process(const FrameBatch& frames, const AlignOutput& out, bool continue_track);
    void reset() {
        const std::lock_guard<std::mutex> lock(busy_);
        carry_ = TrackState{};
        detections_run_ = region_searches_ = frame_searches_ = 0;
    }

private:
    struct Worker {
        dlib::frontal_face_detector detector;
        dlib::frontal_face_detector sized_detector;  // its first pyramid levels only (see detect)
        std::vector<std::uint8_t> gray;        // BGR frames converted to gray
        dlib::array2d<unsigned char> small;    // downscaled frame for detection
        std::vector<dlib::rect_detection> detections;
        long detections_run = 0;   // frames the detector ran on
        long region_searches = 0;  // searches around a tracked face
        long frame_searches = 0;   // searches of the whole frame
    };

    void align_segment(Worker& worker, const FrameBatch& frames, long begin, long end, TrackState& state,
                       const AlignOutput& out) const;
    // The gray view of frame t (BGR frames are converted into the worker's buffer).
    static GrayView frame_view(const FrameBatch& frames, long t, Worker& worker);
    // Track from the face detected at frame `found` back towards frame `searched` (exclusive).
    void track_backwards(Worker& worker, const FrameBatch& frames, long found, long searched,
                         const TrackState& state, const AlignOutput& out) const;
    // Where the detector would box the tracked face (its box at the last detection, moved, scaled
    // and turned with the landmarks), grown by (grow_x, grow_y).
    static dlib::rectangle predicted_box(const TrackState& state, double grow_x, double grow_y);
    // The face to align in `image`: around the tracked face (or the hint) first, the detection that
    // is the tracked person; then the whole frame, the detection the face rule picks.
    std::optional<Detection> detect(Worker& worker, const GrayView& image, TrackState& state) const;
    // The face rule's pick among a search of the whole frame, unless it is taken for another person
    // (see TrackState::split_x); updates split_x.
    std::optional<Detection> choose_in_frame(const std::vector<Detection>& detections, TrackState& state) const;
    // Every face in `image` searched at `scale`, as boxes in the frame (image origin at `origin`).
    static std::vector<Detection> search(Worker& worker, dlib::frontal_face_detector& detector,
                                         const GrayView& image, double scale, const dlib::point& origin);
    // A detection becomes the tracked face (the reference for the next frames).
    void start_track(TrackState& state, const Detection& detection, const dlib::full_object_detection& shape,
                     const FaceChip& chip) const;
    bool plausible_step(const TrackState& state, const FaceChip& chip, const GrayView& image,
                        const dlib::full_object_detection& shape) const;
    void write_found(long frame, const FaceChip& chip, const dlib::full_object_detection& shape, FaceSource source,
                     float score, const AlignOutput& out) const;
    void write_missing(long frame, const AlignOutput& out) const;

    AlignerOptions options_;
    LandmarkPredictor predictor_;
    std::vector<Worker> workers_;
    TrackState carry_;
    long detections_run_ = 0;
    long region_searches_ = 0;
    long frame_searches_ = 0;
    std::mutex busy_;  // one batch at a time: workers and the track are shared state
};

}  // namespace affectflow
