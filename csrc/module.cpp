// Python bindings of affectflow._native.
#include <pybind11/pybind11.h>
#include <pybind11/numpy.h>

#include <dlib/image_processing/frontal_face_detector.h>
#include <dlib/image_processing/shape_predictor.h>

namespace py = pybind11;

namespace {

// Smoke check of the build path: constructs dlib's HOG detector.
int detector_window_count() {
    const dlib::frontal_face_detector detector = dlib::get_frontal_face_detector();
    return static_cast<int>(detector.num_detectors());
}

}  // namespace

PYBIND11_MODULE(_native, m) {
    m.doc() = "affectflow native kernels: dlib face alignment and chip normalization";
    m.def("detector_window_count", &detector_window_count,
          "Number of HOG filters in dlib's frontal face detector (build smoke check).");
}
