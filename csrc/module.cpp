// Python bindings of affectflow._native: the face aligner and the chip normalization kernels.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <cstring>
#include <cstdint>
#include <iterator>
#include <memory>
#include <stdexcept>
#include <string>
#include <tuple>

#include "aligner.h"
#include "normalize.h"

namespace py = pybind11;
using affectflow::GrayView;

namespace {

std::string shape_text(const py::array& array) {
    std::string text = "(";
    for (py::ssize_t i = 0; i < array.ndim(); ++i) text += (i ? ", " : "") + std::to_string(array.shape(i));
    return text + (array.ndim() == 1 ? ",)" : ")");
}

// Frames are read in place: uint8 and C-contiguous, or a ValueError that says what is wrong.
void require_uint8_contiguous(const py::array& array, const char* what) {
    if (!array.dtype().is(py::dtype::of<std::uint8_t>()))
        throw py::value_error(std::string(what) + " must be uint8, got " + std::string(py::str(array.dtype())));
    if (!(array.flags() & py::array::c_style))
        throw py::value_error(std::string(what) + " must be C-contiguous (np.ascontiguousarray)");
}

affectflow::FrameBatch frame_batch(const py::array& frames) {
    require_uint8_contiguous(frames, "frames");
    const bool gray = frames.ndim() == 3;
    const bool bgr = frames.ndim() == 4 && frames.shape(3) == 3;
    if (!gray && !bgr)
        throw py::value_error("frames must be [T,H,W] gray or [T,H,W,3] BGR, got shape " + shape_text(frames));
    affectflow::FrameBatch batch;
    batch.data = static_cast<const std::uint8_t*>(frames.data());
    batch.count = frames.shape(0);
    batch.rows = frames.shape(1);
    batch.cols = frames.shape(2);
    batch.channels = gray ? 1 : 3;
    if (batch.count > 0 && (batch.rows < 16 || batch.cols < 16))
        throw py::value_error("frames are too small: shape " + shape_text(frames));
    return batch;
}

// One gray frame; a BGR frame is converted into `storage` as OpenCV's COLOR_BGR2GRAY does.
GrayView gray_frame(const py::array& frame, std::vector<std::uint8_t>& storage) {
    require_uint8_contiguous(frame, "frame");
    const bool gray = frame.ndim() == 2;
    const bool bgr = frame.ndim() == 3 && frame.shape(2) == 3;
    if (!gray && !bgr) throw py::value_error("frame must be [H,W] gray or [H,W,3] BGR, got shape " + shape_text(frame));
    GrayView view;
    view.rows = frame.shape(0);
    view.cols = frame.shape(1);
    view.stride = view.cols;
    const auto* pixels = static_cast<const std::uint8_t*>(frame.data());
    if (gray) {
        view.data = pixels;
        return view;
    }
    storage.resize(static_cast<std::size_t>(view.rows * view.cols));
    affectflow::bgr_to_gray(pixels, storage.data(), view.rows * view.cols);
    view.data = storage.data();
    return view;
}

py::dict align_batch(affectflow::Aligner& aligner, const py::array& frames, bool continue_track) {
    const affectflow::FrameBatch batch = frame_batch(frames);
    const py::ssize_t count = batch.count, size = aligner.options().chip_size, parts = aligner.landmark_count();
    py::array_t<std::uint8_t> chips({count, size, size});
    py::array_t<bool> found(count), detected(count);
    py::array_t<std::uint8_t> source(count);
    py::array_t<float> score(count);
    py::array_t<float> landmarks({count, parts, py::ssize_t{2}});
    py::array_t<float> transform({count, py::ssize_t{2}, py::ssize_t{3}});
    affectflow::AlignOutput out;
    out.chips = chips.mutable_data();
    out.found = found.mutable_data();
    out.detected = detected.mutable_data();
    out.source = source.mutable_data();
    out.score = score.mutable_data();
    out.landmarks = landmarks.mutable_data();
    out.transform = transform.mutable_data();
    {
        py::gil_scoped_release release;
        aligner.process(batch, out, continue_track);
    }
    py::dict result;
    result["chips"] = chips;
    result["found"] = found;
    result["detected"] = detected;
    result["source"] = source;
    result["score"] = score;
    result["landmarks"] = landmarks;
    result["transform"] = transform;
    return result;
}

// OpenCV's cvtColor(COLOR_BGR2GRAY), bit-exact, into a caller-owned array (one thread, GIL released).
void bgr_to_gray_into(const py::array& bgr, py::array& out) {
    require_uint8_contiguous(bgr, "bgr");
    require_uint8_contiguous(out, "out");
    if (bgr.ndim() != 3 || bgr.shape(2) != 3)
        throw py::value_error("bgr must be [H,W,3], got shape " + shape_text(bgr));
    if (out.ndim() != 2 || out.shape(0) != bgr.shape(0) || out.shape(1) != bgr.shape(1) || !out.writeable())
        throw py::value_error("out must be a writeable [H,W] array, got shape " + shape_text(out) + " for bgr " +
                              shape_text(bgr));
    const auto* pixels = static_cast<const std::uint8_t*>(bgr.data());
    auto* gray = static_cast<std::uint8_t*>(out.mutable_data());
    const long count = static_cast<long>(bgr.shape(0) * bgr.shape(1));
    py::gil_scoped_release release;
    affectflow::bgr_to_gray(pixels, gray, count);
}

py::array_t<float> predict_landmarks(const affectflow::Aligner& aligner, const py::array& frame,
                                     const std::tuple<long, long, long, long>& box) {
    std::vector<std::uint8_t> storage;
    const GrayView image = gray_frame(frame, storage);
    const auto [left, top, right, bottom] = box;
    const dlib::rectangle rect(left, top, right, bottom);
    if (rect.is_empty()) throw py::value_error("box (left, top, right, bottom) is empty");
    dlib::full_object_detection shape;
    {
        py::gil_scoped_release release;
        shape = aligner.landmarks(image, rect);
    }
    const py::ssize_t parts = static_cast<py::ssize_t>(shape.num_parts());
    py::array_t<float> points({parts, py::ssize_t{2}});
    float* out = points.mutable_data();
    for (py::ssize_t i = 0; i < parts; ++i) {
        out[2 * i] = static_cast<float>(shape.part(i).x());
        out[2 * i + 1] = static_cast<float>(shape.part(i).y());
    }
    return points;
}

py::tuple face_chip(const py::array& frame, const py::array_t<double, py::array::c_style | py::array::forcecast>& landmarks,
                    long size, double padding) {
    std::vector<std::uint8_t> storage;
    const GrayView image = gray_frame(frame, storage);
    if (landmarks.ndim() != 2 || landmarks.shape(1) != 2 || (landmarks.shape(0) != 5 && landmarks.shape(0) != 68))
        throw py::value_error("landmarks must be [5,2] or [68,2], got shape " + shape_text(landmarks));
    if (size < 1 || padding < 0) throw py::value_error("size must be positive and padding not negative");
    std::vector<dlib::point> parts;
    for (py::ssize_t i = 0; i < landmarks.shape(0); ++i)
        parts.emplace_back(std::lround(landmarks.at(i, 0)), std::lround(landmarks.at(i, 1)));
    const dlib::full_object_detection shape(dlib::rectangle(), parts);
    py::array_t<std::uint8_t> chip({py::ssize_t{size}, py::ssize_t{size}});
    py::array_t<float> transform({py::ssize_t{2}, py::ssize_t{3}});
    {
        py::gil_scoped_release release;
        const affectflow::FaceChip result = affectflow::face_chip(image, shape, size, padding);
        std::memcpy(chip.mutable_data(), &result.pixels[0][0], static_cast<std::size_t>(size * size));
        affectflow::chip_transform(result.details, transform.mutable_data());
    }
    return py::make_tuple(chip, transform);
}

py::list detect_faces(const py::array& frame) {
    std::vector<std::uint8_t> storage;
    const GrayView image = gray_frame(frame, storage);
    std::vector<affectflow::Detection> detections;
    {
        py::gil_scoped_release release;
        detections = affectflow::detect_faces(image);
    }
    py::list result;
    for (const auto& d : detections)
        result.append(py::make_tuple(py::make_tuple(d.box.left(), d.box.top(), d.box.right(), d.box.bottom()), d.score));
    return result;
}

void normalize_into(const py::array& chips, py::array& out, const std::string& method, double eps, long window,
                    double sigma, int threads) {
    require_uint8_contiguous(chips, "chips");
    if (chips.ndim() != 3) throw py::value_error("chips must be [N,S,S], got shape " + shape_text(chips));
    if (!(out.flags() & py::array::c_style) || !out.writeable())
        throw py::value_error("out must be a writeable C-contiguous array");
    if (out.ndim() != 3 || out.shape(0) != chips.shape(0) || out.shape(1) != chips.shape(1) ||
        out.shape(2) != chips.shape(2))
        throw py::value_error("out has shape " + shape_text(out) + ", chips " + shape_text(chips));
    affectflow::NormalizeParams params;
    try {
        params.method = affectflow::parse_normalization(method);
    } catch (const std::invalid_argument& error) {
        throw py::value_error(error.what());
    }
    params.eps = eps;
    params.window = window;
    params.sigma = sigma;
    params.threads = threads;
    const auto* in = static_cast<const std::uint8_t*>(chips.data());
    const long count = chips.shape(0), rows = chips.shape(1), cols = chips.shape(2);
    if (out.dtype().is(py::dtype::of<float>())) {
        auto* target = static_cast<float*>(out.mutable_data());
        py::gil_scoped_release release;
        affectflow::normalize_chips(in, count, rows, cols, target, params);
    } else if (out.dtype().is(py::dtype("float16"))) {
        auto* target = static_cast<std::uint16_t*>(out.mutable_data());
        py::gil_scoped_release release;
        affectflow::normalize_chips_half(in, count, rows, cols, target, params);
    } else {
        throw py::value_error("out must be float32 or float16, got " + std::string(py::str(out.dtype())));
    }
}

}  // namespace

PYBIND11_MODULE(_native, m) {
    m.doc() = "affectflow native kernels: dlib face alignment and chip normalization";
    py::register_exception_translator([](std::exception_ptr error) {
        try {
            if (error) std::rethrow_exception(error);
        } catch (const std::invalid_argument& e) {
            PyErr_SetString(PyExc_ValueError, e.what());
        }
    });

    py::class_<affectflow::Aligner>(m, "Aligner",
                                    "Whole-video face aligner: dlib HOG detection, landmark tracking, face chips.")
        // chip_size, padding and face_rule have no default here: affectflow.contracts and affectflow.align
        // hold them (DEFAULT_CHIP_SIZE, CHIP_PADDING, DEFAULT_FACE_RULE).
        .def(py::init([](const std::string& predictor_path, long chip_size, double padding,
                         const std::string& face_rule, bool tracking, int detect_every, int threads,
                         double detect_face_width, double min_chip_correlation) {
                 affectflow::AlignerOptions options;
                 options.chip_size = chip_size;
                 options.padding = padding;
                 options.face_rule = affectflow::parse_face_rule(face_rule);
                 options.tracking = tracking;
                 options.detect_every = detect_every;
                 options.threads = threads;
                 options.detect_face_width = detect_face_width;
                 options.min_chip_correlation = min_chip_correlation;
                 // Reading the landmark model (and, once per process, decoding dlib's detector) takes
                 // a while and touches no Python object.
                 py::gil_scoped_release release;
                 return std::make_unique<affectflow::Aligner>(predictor_path, options);
             }),
             py::arg("predictor_path"), py::kw_only(), py::arg("chip_size"), py::arg("padding"), py::arg("face_rule"),
             py::arg("tracking") = true, py::arg("detect_every") = 10, py::arg("threads") = 1,
             py::arg("detect_face_width") = 80.0, py::arg("min_chip_correlation") = 0.6)
        .def("process", &align_batch, py::arg("frames"), py::arg("continue_track") = true,
             "Align uint8 frames [T,H,W] (gray) or [T,H,W,3] (BGR), read in place. Returns a dict of "
             "chips uint8 [T,S,S], found bool [T], detected bool [T] (the detector ran), "
             "source uint8 [T] (0 lost, 1 detected: found by the detector in this frame, 2 tracked: placed by "
             "a neighbouring frame's landmarks), score float32 [T] (the detector's score where source is 1, "
             "else NaN), landmarks float32 [T,P,2] and transform float32 [T,2,3] (frame -> chip); NaN where "
             "not found.")
        .def("landmarks", &predict_landmarks, py::arg("frame"), py::arg("box"),
             "Landmarks float32 [P,2] of the face in box (left, top, right, bottom) of a frame [H,W] or "
             "[H,W,3], as dlib's shape_predictor(frame, box) gives them.")
        .def("reset", &affectflow::Aligner::reset, "Forget the tracked face and the detection count.")
        .def_property_readonly("landmark_count", &affectflow::Aligner::landmark_count)
        .def_property_readonly("detections_run", &affectflow::Aligner::detections_run,
                               "Frames the detector ran on (since construction or reset).")
        .def_property_readonly("region_searches", &affectflow::Aligner::region_searches,
                               "Detector searches around a tracked face.")
        .def_property_readonly("frame_searches", &affectflow::Aligner::frame_searches,
                               "Detector searches of whole frames.")
        .def_property_readonly("threads", [](const affectflow::Aligner& a) { return a.options().threads; })
        .def_property_readonly(
            "face_rule", [](const affectflow::Aligner& a) { return affectflow::face_rule_name(a.options().face_rule); },
            "Which face a search of the whole frame picks: best (detector score), left or right (box centre).");

    // affectflow.contracts.FACE_RULES names the same rules (a test holds them equal).
    py::tuple face_rules(std::size(affectflow::kFaceRuleNames));
    for (std::size_t i = 0; i < std::size(affectflow::kFaceRuleNames); ++i)
        face_rules[i] = affectflow::kFaceRuleNames[i];
    m.attr("FACE_RULES") = face_rules;

    m.attr("SOURCE_LOST") = static_cast<int>(affectflow::FaceSource::lost);
    m.attr("SOURCE_DETECTED") = static_cast<int>(affectflow::FaceSource::detected);
    m.attr("SOURCE_TRACKED") = static_cast<int>(affectflow::FaceSource::tracked);

    m.def("bgr_to_gray", &bgr_to_gray_into, py::arg("bgr"), py::arg("out"),
          "Write the gray version of a BGR uint8 frame [H,W,3] into out [H,W] (both C-contiguous), "
          "bit-exact OpenCV cvtColor(COLOR_BGR2GRAY), in the calling thread with the GIL released.");
    m.def("face_chip", &face_chip, py::arg("frame"), py::arg("landmarks"), py::arg("size") = 96,
          py::arg("padding") = 0.25,
          "(chip uint8 [size,size], transform float32 [2,3]) of a face from its landmarks, as dlib.get_face_chip.");
    m.def("detect_faces", &detect_faces, py::arg("frame"),
          "dlib HOG frontal face detections [((left, top, right, bottom), score)], best first.");
    m.def("normalize_into", &normalize_into, py::arg("chips"), py::arg("out"), py::arg("method"),
          py::arg("eps") = 1.0 / 255.0, py::arg("window") = 9, py::arg("sigma") = 2.0, py::arg("threads") = 0,
          "Normalize uint8 chips [N,S,S] into out (float32 or float16, same shape); GIL released.");
}
