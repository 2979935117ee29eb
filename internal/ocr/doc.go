// Package ocr owns the OCR pipeline: it takes decoded pages, makes them
// upright, chooses a segmentation mode, asks an engine to recognise them and
// shapes the answer into a Result with confidences in [0,1], quadrilateral
// boxes in the caller's coordinates and a review tier per line.
//
// The package never decodes bytes (imageio does) and never talks to a
// transport (httpapi does); it must never return boxes in any coordinate
// system other than the displayed input page's.
package ocr
